import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { callgrindMissing, startCallgrind, type Callgrind } from '../lib/callgrind';
import { addFailures, closedLoop, describeFailures, laneLoop, type ClosedLoopResult } from '../lib/load';
import { descendants } from '../lib/proc';
import { median, round } from '../lib/stats';
import { REQUEST_PATHS } from '../lib/request-path-server';
import { startPeer, type PeerKind, type Server } from '../lib/servers';
import type { Context, Profile, Row, Suite } from '../lib/suite';
import { firstLine } from '../lib/wait';

type Client = 'keep-alive' | 'new-connection';
interface Config {
  name: string;
  peer: PeerKind;
  args: string[];
  /** Only measure the idle (periodic) work, at default intervals. */
  periodicOnly?: boolean;
}

/**
 * Under callgrind a worker is ~50x slower, so drover would see its own workers as stalled,
 * stale or overloaded: these only move thresholds (the code paths per request stay the same).
 * Valgrind also runs a process's threads one at a time, so a JIT compile or a major GC can stop
 * the event loop for seconds: a loop-delay mean over 5 s sheds (503), and a stall past the
 * keep-alive timeout lets the server's idle timer fire before it reads the client's next
 * request, closing a connection the client is using (one CI run lost one request of 50 to one
 * of these; the kind was not recorded then).
 */
const UNDER_CALLGRIND = ['--boot-timeout', '300s', '--worker-timeout', '120s', '--dispatch-freshness', '5s', '--shed-loop-delay', '60s'];
/** For both drover and node:cluster (see UNDER_CALLGRIND). */
const KEEP_ALIVE_TIMEOUT_MS = 60_000;
/**
 * Periodic work runs per wall-clock second, and under callgrind a second holds ~50x fewer
 * requests than natively: left at 50 heartbeats and 1 snapshot a second, it outweighs the
 * requests and subtracting it dominates the result (first run: ±20 %, negative primary costs).
 * Request rows stretch the periods; a separate row measures the periodic work at the defaults.
 */
// With snapshots every 60 s (the first choice) one lands in some windows and not in others: a
// primary's idle rate read 7.6M/s in one window and 0.4M/s in the next (a snapshot merge is the
// likely burst). An hour keeps them out of every window.
const STRETCHED = ['--heartbeat-interval', '1s', '--heartbeat-idle-interval', '1s', '--metrics-interval', '3600s'];
/** autocannon gives up on a response after 10 s by default; under callgrind a worker can pause longer (the likely cause of 3 failed requests in one run). */
const SLOW_TIMEOUT_S = 60;

const CONFIGS: Config[] = [
  { name: 'node:cluster', peer: 'node:cluster', args: [] },
  { name: 'drover', peer: 'drover least-busy', args: [] },
  { name: 'drover, request metrics off', peer: 'drover least-busy', args: ['--request-metrics', 'off'] },
  { name: 'drover round-robin', peer: 'drover round-robin', args: [] },
  { name: 'drover, metrics and shedding off', peer: 'drover least-busy', args: ['--request-metrics', 'off', '--shed-loop-delay', '0ms'] },
];
const PERIODIC: Config = { name: 'drover, idle, default periods', peer: 'drover least-busy', args: [], periodicOnly: true };

/**
 * Per profile: configurations, workers, warm-up and counted requests per window, the request-path
 * rows' warm-up (one connection runs ~100 req/s under callgrind, and counts kept falling after
 * 3,000 warm-up requests: 830k, 761k, 699k per window on a first run: warm up longer there), idle seconds, windows (one
 * process's differ by up to ±25 % with GC and JIT: 5 for a median that holds), request paths.
 */
const PROFILES: Record<Profile, { configs: Config[]; workers: number; warm: number; pathWarm: number; measured: number; idleS: number; rounds: number; paths: readonly (typeof REQUEST_PATHS)[number][] }> = {
  tiny: { configs: CONFIGS.filter((c) => c.name === 'drover'), workers: 1, warm: 100, pathWarm: 100, measured: 50, idleS: 2, rounds: 1, paths: ['drover-metrics'] },
  quick: { configs: [...CONFIGS.slice(0, 3), PERIODIC], workers: 2, warm: 5000, pathWarm: 10_000, measured: 1000, idleS: 15, rounds: 5, paths: REQUEST_PATHS },
  full: { configs: [...CONFIGS, PERIODIC], workers: 2, warm: 5000, pathWarm: 10_000, measured: 1000, idleS: 15, rounds: 5, paths: REQUEST_PATHS },
};

export const costSuite: Suite = {
  name: 'cost',
  title: 'Cost: instructions per /ping request under callgrind (drover vs bare node:cluster)',
  guide:
    'The cost questions of the two suites above, answered in instructions rather than seconds: every server process ' +
    '(primary and workers) runs under valgrind\'s callgrind, which counts the instructions it executes whatever else the shared machine does (throughput runs of one ' +
    'configuration here differ by up to 3x). A process started fresh and sent the same requests repeats its count to ' +
    '~1 %; consecutive windows of one running process do not, while the JIT is still warming up or a major GC falls ' +
    'in one window (the `each window` columns show the spread; counts still fall after 10,000 warm-up requests, so ' +
    'medians carry some warm-up): read differences under ~20 % in the cluster rows as "the same". After a JIT warm-up, ' +
    'counted `/ping` requests are sent with keep-alive and with a new connection each; periodic work (heartbeats, ' +
    'metrics snapshots, the pressure sensor) is measured while idle (for the request rows, the lower of two idle windows) and subtracted, since callgrind\'s ~50x slowdown ' +
    'would charge it to each request ~50x over; it is shown as instructions per second. Instructions are not time ' +
    '(kernel work and cache misses are not counted): this is the CPU work drover adds in user space.',
  estimateS: { tiny: 90, quick: 1800, full: 3600 },
  async run(ctx: Context) {
    const missing = callgrindMissing();
    if (missing) return { settings: {}, rows: [{ config: {}, values: {}, failed: missing }], derived: {} };
    const { configs, workers, warm, pathWarm, measured, idleS, rounds, paths } = PROFILES[ctx.profile];
    const rows: Row[] = [];
    const perReq = new Map<string, { worker: number; primary: number }>();
    const derivedExtra: Record<string, number> = {};
    const cg = startCallgrind();
    try {
      const pathCost = new Map<string, number>();
      for (const variant of paths) {
        ctx.progress(`request path '${variant}': one process under callgrind, one keep-alive connection`);
        try {
          const r = await measureRequestPath(cg, variant, { warm: pathWarm, measured, rounds, idleS });
          pathCost.set(variant, r.perRequest);
          rows.push({
            config: { measure: 'request path, one process', path: variant },
            values: {
              requests: r.requests,
              instrPerReq: Math.round(r.perRequest),
              windows: r.windows.map((x) => Math.round(x / 1000) + 'k').join(' '),
              instrPerSecondIdle: Math.round(r.idlePerSecond),
            },
            failed: describeFailures(r.failureKinds),
          });
        } catch (err) {
          rows.push({ config: { measure: 'request path, one process', path: variant }, values: {}, failed: (err as Error).message });
        }
      }
      const express = pathCost.get('express');
      const droverPath = pathCost.get('drover');
      const withMetrics = pathCost.get('drover-metrics');
      if (express && droverPath) derivedExtra['request path: drover worker path (metrics off) / Express alone'] = ratio(droverPath, express);
      if (droverPath && withMetrics) derivedExtra['request path: request metrics on / off'] = ratio(withMetrics, droverPath);
      const withBlocks = pathCost.get('drover-blocks');
      if (withMetrics && withBlocks) derivedExtra['request path: block detection on / off'] = ratio(withBlocks, withMetrics);

      for (const config of configs) {
        ctx.progress(`${config.name}: starting ${workers} worker(s) under callgrind (slow)`);
        let server: Server | undefined;
        try {
          const args = [...UNDER_CALLGRIND, ...(config.periodicOnly ? [] : STRETCHED), ...config.args];
          server = await startPeer(config.peer, workers, { exec: cg.exec, execArgv: cg.execArgv, args, timeoutMs: 400_000, keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS });
          const primary = server.pid!;
          const workerPids = descendants(primary);
          if (workerPids.length !== workers) throw new Error(`expected ${workers} worker processes, found ${workerPids.length}`);
          const all = [primary, ...workerPids];
          if (config.periodicOnly) {
            // One short request wave first, so the snapshot holds request series, as in service.
            await closedLoop({ url: server.url('/ping'), connections: workers, durationS: 3600, amount: 100, timeoutS: SLOW_TIMEOUT_S });
            ctx.progress(`${config.name}: ${idleS * 3}s idle`);
            const idle = await countDuring(cg, all, () => sleep(idleS * 3000));
            const rate = (pid: number) => Math.round(idle.counts.get(pid)! / idle.seconds);
            rows.push({
              config: { measure: 'cluster', server: config.name, client: 'none (idle)', workers },
              values: {
                workerInstrPerSecondIdle: Math.round(workerPids.reduce((a, w) => a + rate(w), 0) / workers),
                primaryInstrPerSecondIdle: rate(primary),
                wallSeconds: Math.round(idle.seconds * 10) / 10,
              },
            });
            continue;
          }
          for (const client of ['keep-alive', 'new-connection'] as Client[]) {
            const load = (amount: number) =>
              client === 'keep-alive'
                ? closedLoop({ url: server!.url('/ping'), connections: workers, durationS: 3600, amount, timeoutS: SLOW_TIMEOUT_S })
                : laneLoop({ url: server!.url('/ping'), connections: workers, durationS: 3600, amount });
            const warmup = client === 'keep-alive' ? warm : Math.ceil(warm / 3); // the second client reuses the JIT's work
            ctx.progress(`${config.name}, ${client}: ${warmup} warm-up requests, then ${measured} counted`);
            await load(warmup);
            ctx.progress(`${config.name}, ${client}: ${idleS}s idle, for the periodic work`);
            const c = await countWindows(cg, all, { idleS, rounds }, () => load(measured), (w) =>
              ctx.progress(`${config.name}, ${client}: window ${w + 1}/${rounds}, ${measured} counted requests`));
            const workerWindows = c.windows.map((x) => workerPids.reduce((a, pid) => a + x.perRequest(pid), 0));
            const worker = median(workerWindows);
            const primaryPerReq = median(c.windows.map((x) => x.perRequest(primary)));
            perReq.set(`${config.name}|${client}`, { worker, primary: primaryPerReq });
            rows.push({
              config: { measure: 'cluster', server: config.name, client, workers },
              values: {
                requests: c.requests,
                workerInstrPerReq: Math.round(worker),
                primaryInstrPerReq: Math.round(primaryPerReq),
                totalInstrPerReq: Math.round(worker + primaryPerReq),
                workerWindows: workerWindows.map((x) => Math.round(x / 1000) + 'k').join(' '),
                workerInstrPerSecondIdle: Math.round(workerPids.reduce((a, pid) => a + c.idle.get(pid)!, 0) / workers),
                primaryInstrPerSecondIdle: Math.round(c.idle.get(primary)!),
                wallSeconds: Math.round(c.windows.reduce((a, x) => a + x.seconds, 0) * 10) / 10,
              },
              failed: describeFailures(c.failureKinds),
            });
          }
        } catch (err) {
          rows.push({ config: { measure: 'cluster', server: config.name }, values: {}, failed: (err as Error).message });
        } finally {
          await server?.stop();
        }
      }
    } finally {
      cg.close();
    }
    return {
      settings: {
        workers, warmupRequests: warm, requestPathWarmupRequests: pathWarm, countedRequestsPerWindow: measured, windows: rounds, idleSeconds: idleS, route: '/ping', connections: workers,
        flagsUnderCallgrind: UNDER_CALLGRIND.join(' '), periodsStretchedInRequestRows: STRETCHED.join(' '),
      },
      rows,
      derived: { ...derivedExtra, ...derive(perReq) },
    };
  },
};

/** The request path alone (bench/lib/request-path-server.ts), one process, one keep-alive connection. */
async function measureRequestPath(
  cg: Callgrind,
  variant: string,
  o: { warm: number; measured: number; rounds: number; idleS: number },
): Promise<{ perRequest: number; windows: number[]; idlePerSecond: number; requests: number; failureKinds: Record<string, number> }> {
  const script = path.join(__dirname, '..', 'lib', 'request-path-server.js');
  const child = spawn(cg.exec, [script], { env: { ...process.env, REQUEST_PATH: variant, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await firstLine(child, (l) => /^ready (\d+)$/.exec(l)?.[1], 'request-path server');
    const url = `http://127.0.0.1:${port}/ping`;
    const load = (amount: number) => closedLoop({ url, connections: 1, durationS: 3600, amount, timeoutS: SLOW_TIMEOUT_S });
    await load(o.warm);
    const pid = child.pid!;
    const c = await countWindows(cg, [pid], o, () => load(o.measured));
    const windows = c.windows.map((x) => x.perRequest(pid));
    return { perRequest: median(windows), windows, idlePerSecond: c.idle.get(pid)!, requests: c.requests, failureKinds: c.failureKinds };
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * The idle rates of `pids` (over `idleS`), then `rounds` counted windows of `load`: in each, a
 * process's instructions per request are its count less the periodic work (idle rate × the
 * window's seconds), over the window's requests. Callers report the median window: a major GC
 * lands in one window or another and swings a single window by up to ±25 %.
 */
async function countWindows(cg: Callgrind, pids: number[], o: { idleS: number; rounds: number }, load: () => Promise<ClosedLoopResult>, progress?: (w: number) => void) {
  const idle = await idleRates(cg, pids, o.idleS);
  const windows: { perRequest: (pid: number) => number; requests: number; seconds: number }[] = [];
  const failureKinds: Record<string, number> = {};
  for (let w = 0; w < o.rounds; w++) {
    progress?.(w);
    const c = await countDuring(cg, pids, load);
    windows.push({ perRequest: (pid) => (c.counts.get(pid)! - idle.get(pid)! * c.seconds) / c.result.requests, requests: c.result.requests, seconds: c.seconds });
    addFailures(failureKinds, c.result.failureKinds);
  }
  return { idle, windows, failureKinds, requests: windows.reduce((a, x) => a + x.requests, 0) };
}

const ratio = (a: number, b: number) => round(a / b, 3);

/**
 * Instructions per second of each process at rest, for the periodic work: the lower of two
 * half-length idle windows. Work left over from the requests before (V8 compiling hot code, a
 * major GC; valgrind runs those threads too) lands in one idle window now and then: one run read
 * a primary at 7.6M/s idle right after its warm-up and 0.4M/s in the next idle window.
 */
async function idleRates(cg: Callgrind, pids: number[], seconds: number): Promise<Map<number, number>> {
  const wait = () => sleep((seconds * 1000) / 2);
  const a = await countDuring(cg, pids, wait);
  const b = await countDuring(cg, pids, wait);
  return new Map(pids.map((pid) => [pid, Math.min(a.counts.get(pid)! / a.seconds, b.counts.get(pid)! / b.seconds)]));
}

async function countDuring<T>(cg: Callgrind, pids: number[], work: () => Promise<T>): Promise<{ result: T; counts: Map<number, number>; seconds: number }> {
  await cg.zero(pids);
  const started = performance.now();
  const result = await work();
  const counts = await cg.dump(pids);
  return { result, counts, seconds: (performance.now() - started) / 1000 };
}

function derive(perReq: Map<string, { worker: number; primary: number }>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const client of ['keep-alive', 'new-connection'] as Client[]) {
    const bare = perReq.get(`node:cluster|${client}`);
    const drover = perReq.get(`drover|${client}`);
    const off = perReq.get(`drover, request metrics off|${client}`);
    if (bare && drover) {
      d[`${client}: drover / node:cluster, all server instructions per request`] = ratio(drover.worker + drover.primary, bare.worker + bare.primary);
      d[`${client}: drover / node:cluster, worker instructions per request`] = ratio(drover.worker, bare.worker);
      // With keep-alive neither primary sees the requests: only a new connection has a primary cost.
      if (client === 'new-connection') d[`${client}: drover / node:cluster, primary instructions per request`] = ratio(drover.primary, bare.primary);
    }
    if (drover && off) d[`${client}: request metrics on / off, worker instructions per request`] = ratio(drover.worker, off.worker);
  }
  return d;
}
