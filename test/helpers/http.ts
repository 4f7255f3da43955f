/** One-shot requests of the tests: `timedGet`, which the S1 tests (io.test.ts) time, and `getJson`. */
import * as http from 'node:http';

/** A JSON answer of the demo or the upstream: success fields or `{ error: { code, message } }`. */
export type Body = { ok?: boolean; mode?: string; waitedMs?: number; upstreamMs?: number; error?: { code: string; message: string }; [k: string]: unknown };
/** One timed exchange: status, parsed body (empty when not JSON), raw text, client-side ms. */
export interface Timed {
  status: number;
  body: Body;
  text: string;
  ms: number;
}

/** GET on a new connection (keep-alive would pin it to one worker anyway); times the exchange. */
export function timedGet(url: string): Promise<Timed> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: Body = {};
        try {
          body = JSON.parse(text) as Body;
        } catch {
          /* asserted by the caller through status/text */
        }
        resolve({ status: res.statusCode ?? 0, body, text, ms: performance.now() - t0 });
      });
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('client timeout')));
  });
}

/** GET (or `init`) through fetch, the body parsed as JSON when it is JSON. */
export async function getJson<T = Record<string, unknown>>(url: string, init?: RequestInit): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    body = text as unknown as T;
  }
  return { status: res.status, body, headers: res.headers };
}
