import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import type * as hdr from 'hdr-histogram-js';
import { newHistogram } from './stats';

export interface OpenLoopOptions {
  url: string;
  /** Requests per second, sent on a fixed schedule whatever the server does. */
  rate: number;
  durationMs: number;
  /** true: a pool of keep-alive connections (`connections`); false: a new connection per request. */
  keepAlive: boolean;
  connections?: number;
  /** A request not answered this long after its intended send time counts as never completed. */
  timeoutMs?: number;
  /** POST this body (JSON) instead of a GET. */
  body?: Buffer;
  /**
   * Send through this agent instead of one of our own (a pool shared with other clients, as a
   * proxy's upstream pool is); it is not destroyed at the end. Overrides keepAlive/connections.
   */
  agent?: http.Agent;
  /** Count completed requests slower than this (from the intended send time) in `slow`. */
  slowMs?: number;
}

export interface OpenLoopResult {
  /** Latency from the *intended* send time (coordinated omission corrected), µs. */
  latency: hdr.Histogram;
  /** Latency from the actual send time (what a closed-loop tool reports), µs. */
  serviceTime: hdr.Histogram;
  planned: number;
  completed: number;
  errors: number;
  neverCompleted: number;
  /** Completed requests slower than `slowMs` (0 without it). */
  slow: number;
  statuses: Record<string, number>;
}

/**
 * wrk2-style open-loop load: request i is due at t0 + i / rate. A stalled server cannot slow
 * the schedule down (closed-loop tools send less exactly when it matters), and latency counts
 * from the due time, so time spent queued behind a stall is in the numbers.
 */
export function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const r: OpenLoopResult = {
    latency: newHistogram(), serviceTime: newHistogram(), planned: Math.floor((o.rate * o.durationMs) / 1000),
    completed: 0, errors: 0, neverCompleted: 0, slow: 0, statuses: {},
  };
  const ownAgent = o.agent ? undefined : o.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: o.connections ?? 10 }) : undefined;
  const agent = o.agent ?? ownAgent ?? false;
  const reqOptions: http.RequestOptions = o.body
    ? { agent, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': o.body.length } }
    : { agent };
  const timeoutMs = o.timeoutMs ?? 10_000;
  const period = 1000 / o.rate;
  let issued = 0;
  let outstanding = 0;
  return new Promise((resolve) => {
    const t0 = performance.now() + 5;
    const send = (due: number) => {
      outstanding++;
      const sentAt = performance.now();
      let done = false;
      const finish = (ok: boolean, status?: number) => {
        if (done) return;
        done = true;
        outstanding--;
        const now = performance.now();
        if (ok) {
          r.completed++;
          r.latency.recordValue(Math.max(1, Math.round((now - due) * 1000)));
          if (o.slowMs !== undefined && now - due > o.slowMs) r.slow++;
          r.serviceTime.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)));
        } else if (status === undefined) r.errors++;
        if (status !== undefined) r.statuses[status] = (r.statuses[status] ?? 0) + 1;
        maybeEnd();
      };
      const req = http.request(o.url, reqOptions, (res) => {
        res.resume();
        res.on('end', () => finish(res.statusCode === 200, res.statusCode));
        res.on('error', () => finish(false));
      });
      req.on('error', () => finish(false));
      req.end(o.body);
      req.setTimeout(Math.max(1, due + timeoutMs - performance.now()), () => {
        if (done) return;
        done = true;
        outstanding--;
        r.neverCompleted++;
        req.destroy();
        maybeEnd();
      });
    };
    const tick = setInterval(() => {
      const now = performance.now();
      while (issued < r.planned && t0 + issued * period <= now) send(t0 + issued++ * period);
      if (issued >= r.planned) {
        clearInterval(tick);
        maybeEnd();
      }
    }, 1);
    let ended = false;
    function maybeEnd() {
      if (ended || issued < r.planned || outstanding > 0) return;
      ended = true;
      ownAgent?.destroy();
      resolve(r);
    }
  });
}
