import autocannon from 'autocannon';
import type * as hdr from 'hdr-histogram-js';
import { newHistogram } from './stats';

export interface ClosedLoopResult {
  requests: number;
  reqPerSec: number;
  errors: number;
  non2xx: number;
  /** Every response's time, µs (autocannon's own percentiles have no p95). */
  latency: hdr.Histogram;
  durationS: number;
}

/** autocannon, closed loop: `connections` keep-alive connections each send as fast as answered (for `durationS`, or until `amount` requests). */
export async function closedLoop(o: { url: string; connections: number; durationS: number; method?: string; body?: string; amount?: number; timeoutS?: number }): Promise<ClosedLoopResult> {
  const latency = newHistogram();
  // Without a callback autocannon returns an emitter that is also a promise of the result.
  const instance = autocannon({
    url: o.url, connections: o.connections, duration: o.durationS, amount: o.amount, timeout: o.timeoutS, method: (o.method ?? 'GET') as 'GET', body: o.body,
  }) as unknown as Promise<autocannon.Result> & import('node:events').EventEmitter;
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
    latency.recordValue(Math.max(1, Math.round(responseTime * 1000)));
  });
  const res = await instance;
  return {
    requests: res.requests.total,
    reqPerSec: res.requests.total / (res.duration || o.durationS),
    errors: res.errors + res.timeouts,
    non2xx: res.non2xx,
    latency,
    durationS: res.duration,
  };
}
