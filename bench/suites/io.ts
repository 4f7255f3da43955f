import { startDrover } from '../lib/drover';
import { startUpstream } from '../lib/upstream';
import { summarize } from '../lib/stats';
import { findRow, withRunning, type Context, type Profile, type Row, type Suite } from '../lib/suite';
import { laneLoop } from '../lib/load';

/** One measured configuration: a mode, its users, and the pool's threads for `offload`. */
interface Case {
  mode: 'blocking' | 'async' | 'offload';
  users: number;
  poolThreads?: number;
}

/**
 * S1: a handler calls an upstream that answers after 1000 ms; many users, one worker. A blocking
 * call on the event loop vs asynchronous IO vs the same blocking call on the thread pool, in S1's
 * table shape: requests, failures, req/s, median. The blocking call sleeps while it waits (a
 * helper thread makes the request; docs/adr/0014), so a pool thread costs memory, not CPU, and
 * `offload` is bounded by its threads: one call per thread per second. Its two rows show both
 * sides of that: users ≤ threads (each user has a thread: the report's 0 failures, ~1 s), and
 * users > threads (calls queue for a thread, as they did on the report's 41 threads: the median
 * grows to about users / threads seconds, and fails once that passes the users' 10 s patience).
 */
/**
 * Per profile: users, pool threads, seconds per row, and a row with the report's pool (41 threads).
 * tiny keeps users > threads with 10 users; 16 is the demo's IO_OFFLOAD_THREADS default.
 */
const PROFILES: Record<Profile, { users: number; threads: number; durationS: number; reportPool: boolean }> = {
  tiny: { users: 10, threads: 4, durationS: 3, reportPool: false },
  quick: { users: 100, threads: 16, durationS: 12, reportPool: false },
  full: { users: 500, threads: 16, durationS: 60, reportPool: true },
};

export const ioSuite: Suite = {
  name: 'io',
  title: 'S1: a slow upstream called async, blocking, or blocking on the thread pool',
  guide:
    'Scenario S1: a handler calls an upstream that answers after 1000 ms, many users on one worker. `blocking` does ' +
    'the call synchronously on the event loop (the report\'s failing case), `async` uses non-blocking HTTP, `offload` ' +
    'runs the same blocking call on the thread pool (`threads` of them). The blocking call sleeps while it waits, as a ' +
    'real synchronous HTTP client does (a helper thread makes the request; ADR 0014). Shown like the report: requests, ' +
    'failures (a user gives up after 10 s), req/s, median; with more users than pool threads, calls queue for a thread.',
  // Blocking rows run past their duration: the last users wait out the 10 s timeout.
  estimateS: { tiny: 30, quick: 85, full: 340 },
  async run(ctx: Context) {
    const { users, threads, durationS, reportPool } = PROFILES[ctx.profile];
    const waitms = 1000;
    const timeoutMs = 10_000;
    const cases: Case[] = [
      { mode: 'blocking', users },
      { mode: 'async', users },
      { mode: 'offload', users: threads, poolThreads: threads },
      { mode: 'offload', users, poolThreads: threads },
      // The report's pool: 41 threads (FastAPI's default of 40, plus one), at its 500 users.
      ...(reportPool ? [{ mode: 'offload', users, poolThreads: 41 } as Case] : []),
    ];
    const rows: Row[] = [];
    await withRunning(startUpstream(), async (upstream) => {
      for (const c of cases) {
        const pool = c.poolThreads ? `, ${c.poolThreads} pool threads` : '';
        ctx.progress(`${c.mode}: ${c.users} users for ${durationS}s against a ${waitms} ms upstream${pool}`);
        // Shedding and the watchdog off: this reproduces S1's single worker as it was.
        const start = startDrover({
          args: ['--workers', '1', '--shed-loop-delay', '0ms', '--worker-timeout', '120s'],
          env: { UPSTREAM_URL: upstream.url, UPSTREAM_TIMEOUT_MS: String(timeoutMs), IO_OFFLOAD_THREADS: String(c.poolThreads ?? threads) },
        });
        await withRunning(start, async (d) => {
          const r = await laneLoop({ url: d.url(`/upstream?mode=${c.mode}&waitms=${waitms}`), connections: c.users, keepAlive: true, durationS, timeoutMs });
          const s = summarize(r.latency);
          // As the reports counted: every request sent, and a failure for each without a 2xx answer.
          const requests = r.requests + r.errors;
          const failures = r.errors + r.non2xx;
          rows.push({
            config: { mode: c.mode, users: c.users, ...(c.poolThreads ? { poolThreads: c.poolThreads } : {}) },
            values: {
              requests, failures, failurePercent: Math.round((failures / Math.max(1, requests)) * 1000) / 10,
              reqPerSec: Math.round((requests / r.durationS) * 10) / 10, medianMs: s.medianMs, p95Ms: s.p95Ms, maxMs: s.maxMs,
              failureKinds: r.failureKinds,
            },
          });
        });
      }
    });
    const v = (mode: string, u: number, t?: number) =>
      findRow(rows, { mode, users: u, poolThreads: t })?.values as Record<string, number> | undefined;
    return {
      settings: { users, durationSeconds: durationS, upstreamWaitMs: waitms, clientTimeoutMs: timeoutMs, workers: 1, poolThreads: threads },
      rows,
      derived: {
        'failure % blocking': v('blocking', users)?.failurePercent ?? NaN,
        'failure % async': v('async', users)?.failurePercent ?? NaN,
        'failure % offload (users = threads)': v('offload', threads, threads)?.failurePercent ?? NaN,
        'median ms offload (users = threads)': v('offload', threads, threads)?.medianMs ?? NaN,
        'failure % offload (users > threads)': v('offload', users, threads)?.failurePercent ?? NaN,
        'median ms offload (users > threads)': v('offload', users, threads)?.medianMs ?? NaN,
      },
    };
  },
};
