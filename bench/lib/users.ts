import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import type * as hdr from 'hdr-histogram-js';
import { newHistogram } from './stats';

export interface UsersResult {
  requests: number;
  failures: number;
  /** Failure kinds with counts (status codes, timeouts, connection errors). */
  failureKinds: Record<string, number>;
  latency: hdr.Histogram;
  durationS: number;
}

/**
 * `users` simulated users, each sending its next request when the previous one answered (as
 * locust did in the S1 and S2 reports), on keep-alive connections, for `durationS`. A request
 * that takes longer than `timeoutMs` is a failure (the user gives up), as are non-2xx answers.
 */
export async function runUsers(o: {
  users: number;
  durationS: number;
  timeoutMs: number;
  request: (user: number, i: number) => { method: string; url: string; body?: string };
}): Promise<UsersResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.users });
  const r: UsersResult = { requests: 0, failures: 0, failureKinds: {}, latency: newHistogram(), durationS: 0 };
  const started = performance.now();
  const until = started + o.durationS * 1000;
  const fail = (kind: string) => {
    r.failures++;
    r.failureKinds[kind] = (r.failureKinds[kind] ?? 0) + 1;
  };
  const one = (user: number, i: number) =>
    new Promise<void>((resolve) => {
      const spec = o.request(user, i);
      const t = performance.now();
      const req = http.request(spec.url, { method: spec.method, agent, headers: spec.body ? { 'content-type': 'application/json' } : {} }, (res) => {
        res.resume();
        res.on('end', () => {
          r.requests++;
          r.latency.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
          if ((res.statusCode ?? 0) >= 400) fail(`status ${res.statusCode}`);
          resolve();
        });
      });
      req.setTimeout(o.timeoutMs, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        r.requests++;
        fail(err.message === 'timeout' ? 'timeout' : ((err as NodeJS.ErrnoException).code ?? err.message));
        resolve();
      });
      req.end(spec.body);
    });
  await Promise.all(
    Array.from({ length: o.users }, async (_, user) => {
      for (let i = 0; performance.now() < until; i++) await one(user, i);
    }),
  );
  agent.destroy();
  r.durationS = (performance.now() - started) / 1000;
  return r;
}
