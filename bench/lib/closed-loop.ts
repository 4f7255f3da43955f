import autocannon from 'autocannon';
import type * as hdr from 'hdr-histogram-js';
import { newHistogram } from './stats';

export interface ClosedLoopResult {
  requests: number;
  reqPerSec: number;
  errors: number;
  non2xx: number;
  /** What went wrong, with counts: `status 503`, an error code such as `ECONNRESET`, or `request timed out`. */
  failureKinds: Record<string, number>;
  /** Every response's time, µs (autocannon's own percentiles have no p95). */
  latency: hdr.Histogram;
  durationS: number;
}

/**
 * autocannon, closed loop: `connections` keep-alive connections each send as fast as answered
 * (for `durationS`, or until `amount` requests); with `rate`, no faster than that many requests
 * per second over all connections.
 */
export async function closedLoop(o: { url: string; connections: number; durationS: number; method?: string; body?: string; amount?: number; timeoutS?: number; rate?: number }): Promise<ClosedLoopResult> {
  const latency = newHistogram();
  const failureKinds: Record<string, number> = {};
  const count = (kind: string) => addFailures(failureKinds, { [kind]: 1 });
  // Without a callback autocannon returns an emitter that is also a promise of the result.
  const instance = autocannon({
    url: o.url, connections: o.connections, duration: o.durationS, amount: o.amount, timeout: o.timeoutS, method: (o.method ?? 'GET') as 'GET', body: o.body,
    overallRate: o.rate,
  }) as unknown as Promise<autocannon.Result> & import('node:events').EventEmitter;
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    latency.recordValue(Math.max(1, Math.round(responseTime * 1000)));
    if (status < 200 || status > 299) count(`status ${status}`);
  });
  // A timeout arrives here too, as an error without a code ('request timed out').
  instance.on('reqError', (err: NodeJS.ErrnoException) => count(err.code ?? err.message));
  const res = await instance;
  return {
    requests: res.requests.total,
    reqPerSec: res.requests.total / (res.duration || o.durationS),
    errors: res.errors, // autocannon's count of errors already includes its timeouts
    non2xx: res.non2xx,
    failureKinds,
    latency,
    durationS: res.duration,
  };
}

/** Adds one run's failure kinds into a running tally (for results merged over windows or rounds). */
export function addFailures(into: Record<string, number>, from: Record<string, number>): Record<string, number> {
  for (const [kind, n] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + n;
  return into;
}

/** A row's `failed` text: undefined when nothing failed, else the count and each kind, e.g. `2 failed requests (status 503 ×1, ECONNRESET ×1)`. */
export function describeFailures(kinds: Record<string, number>): string | undefined {
  const entries = Object.entries(kinds);
  const total = entries.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return undefined;
  return `${total} failed requests (${entries.map(([k, n]) => `${k} ×${n}`).join(', ')})`;
}
