/** The two ways the harness waits on something it started: a line it prints, or a condition it reaches. */
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/** Re-checks `cond` every `everyMs` until it holds, bounded; resolves with the wait in ms. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number, everyMs = 10): Promise<number> {
  const started = performance.now();
  while (!(await cond())) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(everyMs);
  }
  return performance.now() - started;
}

/**
 * What `match` makes of the first line of the child's stdout it accepts (not undefined). Rejects
 * if the child exits first or, with `timeoutMs`, when that passes.
 */
export function firstLine<T>(child: ChildProcess, match: (line: string) => T | undefined, what: string, timeoutMs?: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = timeoutMs ? setTimeout(() => reject(new Error(`${what} not ready in ${timeoutMs} ms`)), timeoutMs).unref() : undefined;
    child.once('exit', (code, signal) => reject(new Error(`${what} exited (${code ?? signal}) before it was ready`)));
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const v = match(line);
      if (v === undefined) return;
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/** A `firstLine` match: the port of a JSON line `{"msg": msg, "port": N}`. */
export const portLine = (msg: string) => (line: string): number | undefined => {
  try {
    const m = JSON.parse(line) as { msg?: string; port?: unknown };
    return m.msg === msg && typeof m.port === 'number' ? m.port : undefined;
  } catch {
    return undefined; // not a JSON line
  }
};
