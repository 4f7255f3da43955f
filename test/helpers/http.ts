/**
 * The tests' requests: one-shot (`timedGet`, which the S1 tests in io.test.ts time; `getJson`;
 * `hit`) and many (`sendMany`, `hitMany`), the latter on the bench's load generator
 * (bench/lib/load.ts: `send` and `lanes`).
 */
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { addFailures, lanes, send, type Answer } from '../../bench/lib/load';

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

export interface ManyResult {
  /** 2xx answers. */
  ok: number;
  /** Other answers, and requests with no answer. */
  failed: number;
  /** Answers by status code; requests with no answer by their error. */
  statuses: Record<string, number>;
  /** Answers per worker pid (the test apps answer with theirs). */
  byPid: Map<number, number>;
}

/**
 * The tests' closed loop: exactly `until` requests, or as many as go until `until` resolves, on
 * `fresh` lanes (a new connection per request; 8 when no lanes are given), `keepAlive` lanes
 * sharing one pool, and `fetch` lanes. A request not answered in 10 s fails.
 */
export async function sendMany(
  url: string | ((i: number) => string),
  until: number | Promise<unknown>,
  o: { method?: string; keepAlive?: number; fresh?: number; fetch?: number } = {},
): Promise<ManyResult> {
  const { method, ...counts } = o;
  const result: ManyResult = { ok: 0, failed: 0, statuses: {}, byPid: new Map() };
  const agent = new http.Agent({ keepAlive: true });
  const run = lanes({
    ...(counts.keepAlive || counts.fresh || counts.fetch ? counts : { fresh: 8 }), agent, readBody: true, timeoutMs: 10_000,
    ...(typeof until === 'number' ? { amount: until } : {}),
    next: (i) => ({ url: typeof url === 'function' ? url(i) : url, method }),
    onAnswer: (s) => {
      addFailures(result.statuses, { [s.status ?? s.error!]: 1 });
      if (s.status !== undefined && s.status >= 200 && s.status <= 299) result.ok++;
      else result.failed++;
      if (s.pid) result.byPid.set(s.pid, (result.byPid.get(s.pid) ?? 0) + 1);
    },
  });
  if (typeof until !== 'number') void until.finally(run.stop);
  await run.done;
  agent.destroy();
  return result;
}

export interface Hit {
  status: number;
  pid: number | undefined;
  /** `status N` for an answer other than 200, else the error. */
  error: string | undefined;
  /** performance.now() of this process when the request was started / had its answer. */
  startedAt: number;
  endedAt: number;
  ms: number;
}

const toHit = (a: Answer, startedAt: number): Hit => ({
  status: a.status ?? 0, pid: a.pid, error: a.error ?? (a.status === 200 ? undefined : `status ${a.status}`), startedAt, endedAt: a.endedAt, ms: a.endedAt - startedAt,
});

/** One GET (a new connection unless `agent`), read for its pid; never rejects. */
export async function hit(url: string, timeoutMs = 10_000, agent: http.Agent | false = false): Promise<Hit> {
  const startedAt = performance.now();
  return toHit(await send({ url }, { agent, timeoutMs, readBody: true }), startedAt);
}

/** `count` hits, at most `concurrency` at a time, in the order sent. */
export async function hitMany(url: string, count: number, concurrency: number, timeoutMs = 10_000, agent?: http.Agent): Promise<Hit[]> {
  const out = new Array<Hit>(count);
  await lanes({
    ...(agent ? { keepAlive: concurrency, agent } : { fresh: concurrency }), amount: count, url, timeoutMs, readBody: true,
    onAnswer: (s) => (out[s.i] = toHit(s as Answer, s.sentAt)),
  }).done;
  return out;
}
