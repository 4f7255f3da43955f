import * as net from 'node:net';

/**
 * While the app module loads, a `listen()` from app code would open a second port that bypasses
 * drover (ESM apps often call `app.listen(3000)` unconditionally, and CommonJS ones guarded by
 * `if (!module.parent)` do too when loaded through `import()`). Such calls are answered as if
 * they had worked — 'listening' fires, the callback runs, `address()` reports the requested
 * port — without binding anything. Returns the function that restores the real `listen`.
 */
export function interceptListen(onStray: (what: string) => void): () => void {
  const original = net.Server.prototype.listen;
  net.Server.prototype.listen = function strayListen(this: net.Server, ...args: unknown[]): net.Server {
    const first = args[0];
    const port =
      typeof first === 'number' || typeof first === 'string'
        ? Number(first)
        : typeof first === 'object' && first !== null
          ? Number((first as { port?: unknown }).port ?? 0)
          : 0;
    onStray(`listen(${typeof first === 'object' ? JSON.stringify(first) : String(first)})`);
    const callback = args.find((a): a is () => void => typeof a === 'function');
    if (callback) this.once('listening', callback);
    this.address = () => ({ address: '0.0.0.0', family: 'IPv4', port });
    process.nextTick(() => this.emit('listening'));
    return this;
  } as typeof original;
  return () => {
    net.Server.prototype.listen = original;
  };
}
