import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { newHistogram } from './stats';
import { addFailures, type ClosedLoopResult } from './closed-loop';

/**
 * Closed loop with a new connection per request: `connections` loops, each opening a connection,
 * sending one request and waiting for the answer. autocannon cannot do this faithfully (its
 * reconnects drop responses from its counts), and it is what dispatch costs are about. With
 * `amount`, stops after that many requests instead of after `durationS`.
 */
export async function freshLoop(o: { url: string; connections: number; durationS: number; amount?: number }): Promise<ClosedLoopResult> {
  const latency = newHistogram();
  let requests = 0;
  let errors = 0;
  let non2xx = 0;
  const failureKinds: Record<string, number> = {};
  const count = (kind: string) => addFailures(failureKinds, { [kind]: 1 });
  const started = performance.now();
  const until = started + o.durationS * 1000;
  let sent = 0;
  const more = () => (o.amount === undefined ? performance.now() < until : sent++ < o.amount);
  const one = () =>
    new Promise<void>((resolve) => {
      const t = performance.now();
      const req = http.get(o.url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => {
          requests++;
          if (res.statusCode !== 200) {
            non2xx++;
            count(`status ${res.statusCode}`);
          }
          latency.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
          resolve();
        });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        errors++;
        count(err.code ?? err.message);
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (more()) await one();
    }),
  );
  const durationS = (performance.now() - started) / 1000;
  return { requests, reqPerSec: requests / durationS, errors, non2xx, failureKinds, latency, durationS };
}
