import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDrover } from '../lib/drover';
import { closedLoop, describeFailures } from '../lib/load';
import { percentile, round, roundRatios, summarize } from '../lib/stats';
import { withRunning, type Context, type Profile, type Row, type Suite } from '../lib/suite';

const APP = path.resolve(__dirname, '..', '..', '..', 'bench', 'apps', 'many-series.js');

// This machine is shared: single 5 s runs vary by tens of percent, so rounds alternate on/off and
// the result is the median of the per-round ratios (an even count: each mode first equally often).
const PROFILES: Record<Profile, { workerCounts: number[]; scrapes: number; overheadS: number; rounds: number }> = {
  tiny: { workerCounts: [1, 2], scrapes: 5, overheadS: 1, rounds: 1 },
  quick: { workerCounts: [1, 2, 4], scrapes: 40, overheadS: 4, rounds: 6 },
  full: { workerCounts: [1, 2, 4, 8], scrapes: 100, overheadS: 8, rounds: 10 },
};

/** Issue 3's two questions: what does a scrape cost as workers grow, and what do RED metrics cost per request. */
export const metricsSuite: Suite = {
  name: 'metrics',
  title: 'Metrics: scrape latency and per-request overhead',
  guide:
    'How long `GET /metrics` takes as workers are added (each worker holding ~2,000 series), and what the per-request ' +
    'RED metrics cost: `/ping` throughput of the same app with `--request-metrics on` and `off`, alternated in one run. ' +
    'The goal is at most 5 % throughput overhead. Single runs here vary by tens of percent, so the throughput ratio ' +
    'is the median over alternated rounds; the `cost` suite answers the same question in instructions.',
  estimateS: { tiny: 15, quick: 100, full: 260 },
  async run(ctx: Context) {
    const { workerCounts, scrapes, overheadS, rounds } = PROFILES[ctx.profile];
    const rows: Row[] = [];

    for (const workers of workerCounts) {
      ctx.progress(`scrape latency, ${workers} worker(s), ${scrapes} scrapes`);
      const d = await startDrover({ app: APP, args: ['--workers', String(workers)] });
      try {
        // The first scrape includes lazily built state; warm up, then measure sequential scrapes.
        let seriesCount = 0;
        for (let i = 0; i < 3; i++) seriesCount = countSeries(await (await fetch(d.controlUrl('/metrics'))).text());
        const times: number[] = [];
        let bytes = 0;
        for (let i = 0; i < scrapes; i++) {
          const started = performance.now();
          const text = await (await fetch(d.controlUrl('/metrics'))).text();
          times.push(performance.now() - started);
          bytes = text.length;
        }
        rows.push({
          config: { measure: 'scrape', workers },
          values: {
            scrapes,
            seriesExposed: seriesCount,
            bytes,
            p50Ms: round(percentile(times, 50), 2),
            p99Ms: round(percentile(times, 99), 2),
            maxMs: round(Math.max(...times), 2),
          },
        });
      } catch (err) {
        rows.push({ config: { measure: 'scrape', workers }, values: {}, failed: String(err) });
      } finally {
        await d.stop();
      }
    }

    // Same app, same load, request metrics on and off, alternated in one run.
    const overhead: Record<'on' | 'off', number[]> = { on: [], off: [] };
    for (let round = 0; round < rounds; round++) {
      // Counterbalanced: which mode runs first alternates, so a position effect (the machine still
      // busy with the previous server's exit) cannot pass for an overhead.
      for (const mode of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        ctx.progress(`/ping throughput, request metrics ${mode}, round ${round + 1}/${rounds}, ${overheadS}s`);
        await withRunning(startDrover({ args: ['--workers', '1', '--request-metrics', mode] }), async (d) => {
          await closedLoop({ url: d.url('/ping'), connections: 10, durationS: 1 }); // warm-up (JIT)
          const r = await closedLoop({ url: d.url('/ping'), connections: 10, durationS: overheadS });
          const s = summarize(r.latency);
          overhead[mode].push(r.reqPerSec);
          rows.push({
            config: { measure: 'overhead', requestMetrics: mode, round: round + 1 },
            values: { reqPerSec: Math.round(r.reqPerSec), requests: r.requests, errors: r.errors, p50Ms: s.medianMs, p95Ms: s.p95Ms, p99Ms: s.p99Ms },
            failed: describeFailures(r.failureKinds),
          });
        });
      }
    }
    const { sorted: ratios, median: ratio } = roundRatios(overhead.on, overhead.off);
    return {
      settings: { scrapes, overheadSeconds: overheadS, rounds, connections: 10, appSeriesPerWorker: 1900 },
      rows,
      derived: {
        throughputWithMetricsVsWithout: round(ratio, 3),
        overheadPercent: round((1 - ratio) * 100, 1),
        'per-round ratios (on/off), sorted': ratios.map((x) => round(x, 2)).join(' '),
      },
    };
  },
};

function countSeries(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (line && !line.startsWith('#')) n++;
  return n;
}
