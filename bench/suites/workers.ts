import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import { makeIngestBody } from '../../src/demo/s3';
import { startDrover } from '../../test/helpers/drover';
import { openLoop } from '../lib/open-loop';
import { newHistogram, summarize } from '../lib/stats';
import type { Context, Profile, Row, Suite } from '../lib/suite';

type Client = 'new-connection' | 'keep-alive';
type Dispatch = 'least-busy' | 'round-robin';
/** naive vs drover's helper: S0 `stream` (time-sliced JSON), S3 `offload` (thread-pool parse). */
type Mode = 'naive' | 'stream' | 'offload';
type Big = 's0' | 's3';

interface Point {
  workers: number;
  dispatch: Dispatch;
  big: Big;
  mode: Mode;
  client: Client;
}

/**
 * The matrix. New-connection clients compare the dispatchers (only a new connection can be
 * steered away from a busy worker); keep-alive clients compare naive and streamed big responses
 * (a keep-alive client stays on its worker, so only a loop-friendly handler helps it).
 */
function points(p: Profile): Point[] {
  const workers = p === 'tiny' ? [1, 2] : p === 'quick' ? [1, 2, 4] : [1, 2, 4, 8];
  const out: Point[] = [];
  for (const w of workers) {
    for (const dispatch of ['round-robin', 'least-busy'] as const) out.push({ workers: w, dispatch, big: 's0', mode: 'naive', client: 'new-connection' });
    for (const mode of ['naive', 'stream'] as const) out.push({ workers: w, dispatch: 'least-busy', big: 's0', mode, client: 'keep-alive' });
    if (p !== 'quick' || w !== 2) {
      for (const mode of ['naive', 'offload'] as const) out.push({ workers: w, dispatch: 'least-busy', big: 's3', mode, client: 'keep-alive' });
    }
    if (p === 'full') out.push({ workers: w, dispatch: 'least-busy', big: 's0', mode: 'stream', client: 'new-connection' });
  }
  return out;
}

/**
 * One client keeping large work in flight, back to back on new connections: fetching the S0
 * payload (GET) or posting the S3 body (POST).
 */
function bigLoop(url: string, stop: Promise<void>, body?: Buffer) {
  const latency = newHistogram();
  let stopped = false;
  let errors = 0;
  void stop.then(() => (stopped = true));
  const one = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const req = http.request(url, { agent: false, method: body ? 'POST' : 'GET', headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) latency.recordValue(Math.round((performance.now() - started) * 1000));
          else errors++;
          resolve();
        });
        res.on('error', () => {
          errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const done = (async () => {
    while (!stopped) await one();
  })();
  return { latency, done, errors: () => errors };
}

export const workersSuite: Suite = {
  name: 'workers',
  title: 'Small-request latency vs worker count, while big responses are served',
  estimateS: { tiny: 40, quick: 150, full: 420 },
  async run(ctx: Context) {
    const p = ctx.profile;
    const loadS = p === 'tiny' ? 1.5 : p === 'quick' ? 5 : 10;
    const baseS = p === 'tiny' ? 1 : 2;
    const rate: Record<Client, number> = { 'new-connection': 50, 'keep-alive': 200 };
    const clients = p === 'tiny' ? 2000 : 40_000;
    const ingestBytes = p === 'tiny' ? 1_000_000 : 25_000_000;
    const ingestBody = makeIngestBody(ingestBytes);
    const rows: Row[] = [];
    const list = points(p);
    for (const [i, pt] of list.entries()) {
      ctx.progress(`${i + 1}/${list.length}: ${pt.workers} worker(s), ${pt.dispatch}, ${pt.big} ${pt.mode}, ${pt.client}`);
      const config = { ...pt };
      // Shedding off: this suite measures queueing behind big work, not the shedding policy.
      const d = await startDrover({ args: ['--workers', String(pt.workers), '--dispatch', pt.dispatch, '--shed-loop-delay', '0ms'] });
      try {
        const ka = pt.client === 'keep-alive';
        const small = { url: d.url('/ping'), rate: rate[pt.client], keepAlive: ka, connections: 20 };
        await openLoop({ ...small, durationMs: 500 }); // warm-up: JIT, connection pool
        const baseline = await openLoop({ ...small, durationMs: baseS * 1000 });
        let release!: () => void;
        const stop = new Promise<void>((r) => (release = r));
        const big = pt.big === 's0'
          ? bigLoop(d.url(`/clients?count=${clients}&mode=${pt.mode}`), stop)
          : bigLoop(d.url(`/ingest?mode=${pt.mode}`), stop, ingestBody);
        const loaded = await openLoop({ ...small, durationMs: loadS * 1000 });
        release();
        await big.done;
        const s = summarize(loaded.latency);
        const b = summarize(baseline.latency);
        const l = summarize(big.latency);
        const failures = loaded.errors + loaded.neverCompleted + big.errors();
        rows.push({
          config,
          values: {
            smallCount: s.count, smallMin: s.minMs, smallMedian: s.medianMs, smallMean: s.meanMs, smallP90: s.p90Ms,
            smallP95: s.p95Ms, smallP99: s.p99Ms, smallMax: s.maxMs,
            closedLoopP95: summarize(loaded.serviceTime).p95Ms,
            baselineP95: b.p95Ms, baselineMax: b.maxMs,
            largeCount: l.count, largeMedian: l.medianMs, largeP95: l.p95Ms, largeMax: l.maxMs,
            errors: loaded.errors + big.errors(), neverCompleted: loaded.neverCompleted,
          },
          failed: failures > 0.01 * loaded.planned ? `${failures} failed small/large requests` : undefined,
        });
      } catch (err) {
        rows.push({ config, values: {}, failed: String(err) });
      } finally {
        await d.stop();
      }
    }
    return {
      settings: {
        loadSeconds: loadS, baselineSeconds: baseS, smallRatePerSecond: rate, keepAliveConnections: 20,
        bigClients: 1, s0: `GET /clients?count=${clients}`, s3: `POST /ingest, ${ingestBody.length} bytes`,
      },
      rows,
      derived: derive(rows),
    };
  },
};

/** Headline ratios: how much p95 of small requests improves with workers, dispatch and streaming. */
function derive(rows: Row[]): Record<string, number> {
  const p95 = (w: number, dispatch: Dispatch, mode: Mode, client: Client, big: Big = 's0') =>
    rows.find((r) => !r.failed && r.config.workers === w && r.config.dispatch === dispatch && r.config.mode === mode && r.config.client === client && r.config.big === big)?.values.smallP95 as number | undefined;
  const out: Record<string, number> = {};
  const ws = [...new Set(rows.map((r) => r.config.workers as number))].sort((a, b) => a - b);
  const maxW = ws[ws.length - 1]!;
  const rr = p95(maxW, 'round-robin', 'naive', 'new-connection');
  const lb = p95(maxW, 'least-busy', 'naive', 'new-connection');
  if (rr && lb) out[`p95RoundRobinOverLeastBusyAt${maxW}Workers`] = Math.round((rr / lb) * 10) / 10;
  const naive1 = p95(1, 'least-busy', 'naive', 'keep-alive');
  const stream1 = p95(1, 'least-busy', 'stream', 'keep-alive');
  if (naive1 && stream1) out.p95NaiveOverStreamAt1WorkerKeepAlive = Math.round((naive1 / stream1) * 10) / 10;
  const s3naive = p95(1, 'least-busy', 'naive', 'keep-alive', 's3');
  const s3off = p95(1, 'least-busy', 'offload', 'keep-alive', 's3');
  if (s3naive && s3off) out.p95S3NaiveOverOffloadAt1WorkerKeepAlive = Math.round((s3naive / s3off) * 10) / 10;
  const lb1 = p95(1, 'least-busy', 'naive', 'new-connection');
  if (lb1 && lb) out[`p95At1OverAt${maxW}WorkersLeastBusy`] = Math.round((lb1 / lb) * 10) / 10;
  return out;
}
