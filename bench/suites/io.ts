import { startDrover } from '../../test/helpers/drover';
import { startUpstream } from '../../test/helpers/upstream';
import { summarize } from '../lib/stats';
import type { Context, Row, Suite } from '../lib/suite';
import { runUsers } from '../lib/users';

/**
 * S1: a handler calls an upstream that answers after 1000 ms; many users, one worker. Blocking
 * IO on the event loop (execFileSync) vs asynchronous IO vs the same blocking call on the thread
 * pool, in S1's table shape: requests, failures, req/s, median.
 */
export const ioSuite: Suite = {
  name: 'io',
  title: 'S1: a slow upstream called async, blocking, or blocking on the thread pool',
  estimateS: { tiny: 20, quick: 50, full: 200 },
  async run(ctx: Context) {
    const p = ctx.profile;
    const users = p === 'tiny' ? 10 : p === 'quick' ? 100 : 500;
    const durationS = p === 'tiny' ? 3 : p === 'quick' ? 12 : 60;
    const waitms = 1000;
    const timeoutMs = 10_000;
    const rows: Row[] = [];
    const upstream = await startUpstream();
    try {
      for (const mode of ['blocking', 'async', 'offload'] as const) {
        ctx.progress(`${mode}: ${users} users for ${durationS}s against a ${waitms} ms upstream`);
        // Shedding and the watchdog off: this reproduces S1's single worker as it was.
        const d = await startDrover({
          args: ['--workers', '1', '--shed-loop-delay', '0ms', '--worker-timeout', '120s'],
          env: { UPSTREAM_URL: upstream.url, UPSTREAM_TIMEOUT_MS: String(timeoutMs) },
        });
        try {
          const r = await runUsers({ users, durationS, timeoutMs, request: () => ({ method: 'GET', url: d.url(`/upstream?mode=${mode}&waitms=${waitms}`) }) });
          const s = summarize(r.latency);
          rows.push({
            config: { mode, users },
            values: {
              requests: r.requests, failures: r.failures, failurePercent: Math.round((r.failures / Math.max(1, r.requests)) * 1000) / 10,
              reqPerSec: Math.round((r.requests / r.durationS) * 10) / 10, medianMs: s.medianMs, p95Ms: s.p95Ms, maxMs: s.maxMs,
              failureKinds: r.failureKinds,
            },
          });
        } finally {
          await d.stop();
        }
      }
    } finally {
      await upstream.stop();
    }
    const v = (mode: string) => rows.find((r) => r.config.mode === mode)?.values as Record<string, number> | undefined;
    return {
      settings: { users, durationSeconds: durationS, upstreamWaitMs: waitms, clientTimeoutMs: timeoutMs, workers: 1 },
      rows,
      derived: {
        'failure % blocking': v('blocking')?.failurePercent ?? NaN,
        'failure % async': v('async')?.failurePercent ?? NaN,
        'failure % offload': v('offload')?.failurePercent ?? NaN,
      },
    };
  },
};
