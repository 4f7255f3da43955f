/**
 * The control server as the tests read it: one request per connection, so no keep-alive socket
 * is left in the primary (the reliability cases count its descriptors).
 */
import * as http from 'node:http';
import type { Drover, Status } from '../../bench/lib/drover';

/** One request on its own connection (no keep-alive socket left in the primary, which would count as an fd). */
export function getText(url: string, headers: Record<string, string> = {}, method = 'GET', timeoutMs = 5000): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.end();
  });
}

/** GET /status on its own connection. */
export async function status(d: Drover): Promise<Status> {
  return JSON.parse((await getText(d.controlUrl('/status'))).body) as Status;
}

/** Polls /status every `everyMs` until `pick` returns a value, bounded. */
export async function waitStatus<T>(d: Drover, what: string, pick: (s: Status) => T | undefined, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = pick(await status(d));
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}\n${d.tail()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
