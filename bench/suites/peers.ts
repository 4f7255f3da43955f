import { setTimeout as sleep } from 'node:timers/promises';
import { cpuClock, tree } from '../lib/proc';
import { closedLoop, describeFailures, laneLoop, openLoop } from '../lib/load';
import { startPeer, type PeerKind } from '../lib/servers';
import { percentile, round, roundRatios, summarize } from '../lib/stats';
import { withRunning, type Context, type Profile, type Row, type Suite } from '../lib/suite';

type Client = 'keep-alive' | 'new-connection';

/**
 * drover with what its workers do besides serving switched off or stretched (request metrics,
 * the shedding sensor, metrics snapshots every 60 s instead of every second). Heartbeats keep
 * their default pace (20 ms while new connections are dispatched, 100 ms otherwise; ADR 0010).
 * Against drover's defaults: the cost of those worker features.
 */
const LEAN = ['--request-metrics', 'off', '--shed-loop-delay', '0ms', '--metrics-interval', '60s'];
const BASE = 'drover least-busy';
const LEAN_NAME = 'drover least-busy, metrics and shedding off';
/**
 * node:cluster's own primary over workers built of drover's worker pieces, resolved from the same
 * LEAN flags as the lean row (bench/peers/cluster-drover-workers.ts). Lean drover / this row is the cost of drover's primary
 * (dispatch, handle passing, supervision); this row / node:cluster, the cost of the worker pieces.
 */
const CONTROL = 'node:cluster, drover workers';
/** drover's defaults with block detection off (issue 17): against BASE, what detection costs when nothing blocks. */
const NO_BLOCKS = 'drover least-busy, --block-threshold 0ms';
const PEERS: { name: string; kind: PeerKind; args?: string[] }[] = [
  { name: BASE, kind: 'drover least-busy' },
  { name: 'drover round-robin', kind: 'drover round-robin' },
  { name: LEAN_NAME, kind: 'drover least-busy', args: LEAN },
  { name: NO_BLOCKS, kind: 'drover least-busy', args: ['--block-threshold', '0ms'] },
  { name: 'node:cluster', kind: 'node:cluster' },
  { name: CONTROL, kind: 'node:cluster, drover workers', args: LEAN },
  { name: 'pm2 cluster', kind: 'pm2 cluster' },
];

/**
 * Per profile: seconds per throughput run and of warm-up; rounds (they alternate every peer, ratios
 * are medians over them; multiples of the peer count, so each peer runs in each position equally
 * often); seconds idle after a run; the fixed rate of the CPU rows (well under what any peer serves
 * here at saturation, >= 2k req/s in the worst rounds seen); the blocks rows' length; idle after quiet.
 */
const PROFILES: Record<Profile, { durationS: number; warmS: number; rounds: number; idleS: number; rate: number; blocksMs: number; quiet: { settleMs: number; measureMs: number; idleRounds: number } }> = {
  tiny: { durationS: 1, warmS: 0.5, rounds: 1, idleS: 0.5, rate: 200, blocksMs: 2000, quiet: { settleMs: 1000, measureMs: 500, idleRounds: 1 } },
  quick: { durationS: 5, warmS: 5, rounds: PEERS.length, idleS: 3, rate: 1000, blocksMs: 10_000, quiet: { settleMs: 20_000, measureMs: 10_000, idleRounds: 3 } },
  full: { durationS: 10, warmS: 5, rounds: 2 * PEERS.length, idleS: 3, rate: 1000, blocksMs: 10_000, quiet: { settleMs: 20_000, measureMs: 10_000, idleRounds: 3 } },
};

export const peersSuite: Suite = {
  name: 'peers',
  title: 'Peers: /ping throughput under drover, bare node:cluster and pm2 cluster mode',
  guide:
    'What drover costs against its peers: the same demo app and the same `/ping` load under drover (least-busy and ' +
    'round-robin at their defaults, least-busy with request metrics, shedding off and metrics snapshots every 60 s, and ' +
    'least-busy with block detection off, `--block-threshold 0ms`), ' +
    'a bare `node:cluster` primary that only forks, the same bare primary over workers built of the lean drover\'s worker ' +
    'pieces (request path with connection tracking, heartbeats over IPC at drover\'s idle pace with the watchdog thread, ' +
    'drover\'s prom-client default metrics, `--enable-source-maps`), and pm2 cluster mode, alternated round by round in one ' +
    'run. Each peer is measured at saturation with keep-alive connections (autocannon) and with a new connection per ' +
    'request (a closed-loop client of our own); then, for the peers whose processes are the primary\'s children (not ' +
    'pm2), the CPU time of the whole process tree (scheduler time from /proc) per request at a fixed, keep-alive rate, and ' +
    'per second with no traffic. The derived ratios are medians of per-round ratios: each peer\'s req/s over drover ' +
    'least-busy\'s, then the lean drover\'s gap to node:cluster split in two: the bare primary over drover\'s worker ' +
    'pieces against lean drover is the cost of drover\'s primary (dispatch, handle passing, supervision); node:cluster ' +
    'against that row is the cost of the worker pieces. On this shared VM single rounds of one peer vary by tens of ' +
    'percent, so ratios from 6 rounds move by ±20 % from run to run (ADR 0008). Last, the "blocks every second" rows ' +
    '(ADR 0018): `/block?ms=300` at 1/s beside `/ping` on new connections at 50/s (open loop), drover with block ' +
    'detection on and off, alternated: failed requests, pings slower than 100 ms (handed to a blocked worker), and the ' +
    'blocks drover counted. Then idle CPU after 20 s without any traffic (drover sleeps after 10 s: 1 s heartbeats, ' +
    'the shedding sensor closed, metrics pushes skipped; ADR 0020), drover at its defaults and node:cluster, 3 rounds.',
  estimateS: { tiny: 130, quick: 1560, full: 3800 },
  async run(ctx: Context) {
    const { durationS, warmS, rounds, idleS, rate } = PROFILES[ctx.profile];
    const workers = 2;
    const connections = 10;
    const rows: Row[] = [];
    const rps: Record<string, number[]> = {};
    const idle: Record<string, number[]> = {};
    const cpu: Record<string, number[]> = {};
    for (let round = 1; round <= rounds; round++) {
      // Counterbalanced: the order of peers rotates each round, so none always runs first (right
      // after the previous server's exit) or last.
      const order = PEERS.map((_, i) => PEERS[(i + round - 1) % PEERS.length]!);
      for (const { name: peer, kind, args } of order) {
        let server;
        try {
          server = await startPeer(kind, workers, { args });
        } catch (err) {
          rows.push({ config: { peer, round }, values: {}, failed: `did not start: ${(err as Error).message}` });
          continue;
        }
        try {
          for (const client of ['keep-alive', 'new-connection'] as Client[]) {
            ctx.progress(`round ${round}/${rounds}: ${peer}, ${client}, ${durationS}s`);
            const load = client === 'keep-alive' ? closedLoop : laneLoop;
            // Warm-up: a fresh drover needs ~5 s of /ping before its req/s levels off (the JIT has
            // more code to optimise than a bare cluster's); 0.5 s measured partly warm-up speed.
            await load({ url: server.url('/ping'), connections, durationS: warmS });
            const r = await load({ url: server.url('/ping'), connections, durationS });
            const s = summarize(r.latency);
            (rps[`${peer}|${client}`] ??= []).push(r.reqPerSec);
            rows.push({
              config: { peer, client, round },
              values: { reqPerSec: Math.round(r.reqPerSec), p50Ms: s.medianMs, p95Ms: s.p95Ms, p99Ms: s.p99Ms, errors: r.errors + r.non2xx },
              failed: describeFailures(r.failureKinds),
            });
          }
          // CPU, which repeats where req/s at saturation does not (a shared VM): the whole process
          // tree's scheduler time per request at a fixed rate every peer sustains, then per second
          // with no traffic at all (timers, heartbeats). pm2's processes are not its children.
          if (server.pid !== undefined) {
            const pids = tree(server.pid);
            ctx.progress(`round ${round}/${rounds}: ${peer}, ${rate} req/s, ${durationS}s`);
            const cpuMs = cpuClock(pids);
            // Evenly paced (a request every 1/rate s, staggered over the connections): autocannon's
            // overallRate sent each second's share back to back and then idled (ADR 0020).
            const r = await laneLoop({ url: server.url('/ping'), connections, durationS, rate, keepAlive: true });
            const usPerRequest = (cpuMs() * 1000) / Math.max(1, r.requests);
            (cpu[peer] ??= []).push(usPerRequest);
            rows.push({
              config: { peer, client: `keep-alive, ${rate} req/s evenly paced`, round },
              values: { reqPerSec: Math.round(r.reqPerSec), cpuUsPerRequest: Math.round(usPerRequest), errors: r.errors + r.non2xx },
              failed: describeFailures(r.failureKinds),
            });
            ctx.progress(`round ${round}/${rounds}: ${peer}, idle, ${idleS}s`);
            await sleep(1000); // let the last responses and GC settle
            const ms = await idleCpu(pids, idleS * 1000);
            (idle[peer] ??= []).push(ms);
            rows.push({ config: { peer, client: 'idle', round }, values: { idleCpuMsPerS: Math.round(ms * 10) / 10, processes: pids.length } });
          }
        } finally {
          await server.stop();
        }
      }
    }
    const derived: Record<string, number> = {};
    await blocksEverySecond(ctx, rounds, workers, rows, derived);
    await idleAfterQuiet(ctx, workers, rows, derived);
    // Median of the per-round ratios: each round ran every peer back to back.
    const ratio = (client: Client, peer: string, base: string) =>
      round(roundRatios(rps[`${peer}|${client}`] ?? [], rps[`${base}|${client}`] ?? []).median, 2);
    for (const client of ['keep-alive', 'new-connection'] as Client[]) {
      for (const { name } of PEERS.filter((x) => x.name !== BASE)) derived[`${client} req/s ${name} / ${BASE}`] = ratio(client, name, BASE);
      // The whole gap between lean drover and node:cluster, then split: primary, worker pieces.
      derived[`${client} req/s node:cluster / ${LEAN_NAME}`] = ratio(client, 'node:cluster', LEAN_NAME);
      derived[`${client} req/s ${CONTROL} / ${LEAN_NAME}`] = ratio(client, CONTROL, LEAN_NAME);
      derived[`${client} req/s node:cluster / ${CONTROL}`] = ratio(client, 'node:cluster', CONTROL);
    }
    for (const [peer, us] of Object.entries(cpu)) derived[`CPU us per request at ${rate} req/s, ${peer}`] = Math.round(percentile(us, 50));
    // The split again, in CPU per request (ratios of rounds: > 1 means the first costs more).
    const cpuRatio = (a: string, b: string) => round(roundRatios(cpu[a] ?? [], cpu[b] ?? []).median, 2);
    derived[`CPU per request at ${rate} req/s ${LEAN_NAME} / ${CONTROL}`] = cpuRatio(LEAN_NAME, CONTROL);
    derived[`CPU per request at ${rate} req/s ${CONTROL} / node:cluster`] = cpuRatio(CONTROL, 'node:cluster');
    derived[`CPU per request at ${rate} req/s ${BASE} / ${LEAN_NAME}`] = cpuRatio(BASE, LEAN_NAME);
    derived[`CPU per request at ${rate} req/s ${BASE} / ${NO_BLOCKS}`] = cpuRatio(BASE, NO_BLOCKS);
    for (const [peer, ms] of Object.entries(idle)) derived[`idle CPU ms per s, ${peer}`] = round(percentile(ms, 50), 1);
    return { settings: { workers, warmupSeconds: warmS, durationSeconds: durationS, fixedRate: rate, fixedRateLoad: 'evenly paced, staggered over the keep-alive connections', idleSeconds: idleS, rounds, connections, route: '/ping' }, rows, derived };
  },
};

/** Small requests slower than this waited behind a block: they were handed to a blocked worker. */
const SLOW_MS = 100;
const BLOCK_MS = 300;

/**
 * With a block every second (one client sends `/block?ms=300` at 1/s while `/ping` comes on new
 * connections at 50/s, open loop), block detection samples and captures stacks: it must add no
 * failed request and no small request handed to a blocked worker (one slower than 100 ms) over
 * the same drover with detection off. Alternated round by round, as the rest of the suite.
 */
async function blocksEverySecond(ctx: Context, rounds: number, workers: number, rows: Row[], derived: Record<string, number>): Promise<void> {
  const durationMs = PROFILES[ctx.profile].blocksMs;
  const sides = [
    { peer: BASE, args: [] as string[] },
    { peer: NO_BLOCKS, args: ['--block-threshold', '0ms'] },
  ];
  const slow: Record<string, number[]> = {};
  const failed: Record<string, number> = {};
  for (let round = 1; round <= Math.max(2, Math.ceil(rounds / 3)); round++) {
    for (const { peer, args } of round % 2 ? sides : [...sides].reverse()) {
      ctx.progress(`blocks every second, round ${round}: ${peer}, ${durationMs / 1000}s`);
      await withRunning(startPeer('drover least-busy', workers, { args }), async (server) => {
        const [blocks, ping] = await Promise.all([
          openLoop({ url: server.url(`/block?ms=${BLOCK_MS}`), rate: 1, keepAlive: false, durationMs }),
          openLoop({ url: server.url('/ping'), rate: 50, keepAlive: false, durationMs, slowMs: SLOW_MS }),
        ]);
        const text = await (await fetch(server.controlUrl!('/metrics'))).text();
        const counted = text
          .split('\n')
          .filter((l) => l.startsWith('drover_event_loop_blocks_total{'))
          .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
        const errors = blocks.errors + blocks.neverCompleted + ping.errors + ping.neverCompleted;
        (slow[peer] ??= []).push(ping.slow / Math.max(1, ping.completed));
        failed[peer] = (failed[peer] ?? 0) + errors;
        const s = summarize(ping.latency);
        rows.push({
          config: { peer, client: `new-connection /ping 50/s, /block?ms=${BLOCK_MS} 1/s`, round },
          values: { p95Ms: s.p95Ms, maxMs: s.maxMs, pingsOver100Ms: ping.slow, pings: ping.completed, blocksSent: blocks.completed, blocksCounted: counted, errors },
          failed: errors ? `${errors} failed or never completed` : undefined,
        });
      });
    }
  }
  for (const { peer } of sides) {
    derived[`blocks every second: % of pings over ${SLOW_MS} ms, ${peer}`] = Math.round(percentile(slow[peer] ?? [], 50) * 10000) / 100;
    derived[`blocks every second: failed requests, ${peer}`] = failed[peer] ?? 0;
  }
}

/**
 * Idle CPU once there has been no traffic for a while: drover's pace sleeps after 10 s without a
 * request (1 s heartbeats, the shedding sensor closed, metrics pushes skipped; issue 19), which
 * the per-round idle rows above (1 s after the load) do not reach. drover at its defaults and bare
 * node:cluster, fresh processes, alternated; the whole tree's scheduler time per second.
 */
async function idleAfterQuiet(ctx: Context, workers: number, rows: Row[], derived: Record<string, number>): Promise<void> {
  const { settleMs, measureMs, idleRounds } = PROFILES[ctx.profile].quiet;
  const peers = [
    { name: BASE, kind: 'drover least-busy' as PeerKind },
    { name: 'node:cluster', kind: 'node:cluster' as PeerKind },
  ];
  const ms: Record<string, number[]> = {};
  for (let round = 1; round <= idleRounds; round++) {
    for (const { name, kind } of round % 2 ? peers : [...peers].reverse()) {
      ctx.progress(`idle after ${settleMs / 1000}s without traffic, round ${round}: ${name}`);
      await withRunning(startPeer(kind, workers), async (server) => {
        await sleep(settleMs);
        const pids = tree(server.pid!);
        const v = await idleCpu(pids, measureMs);
        (ms[name] ??= []).push(v);
        rows.push({ config: { peer: name, client: `idle after ${settleMs / 1000}s without traffic`, round }, values: { idleCpuMsPerS: Math.round(v * 10) / 10, processes: pids.length } });
      });
    }
  }
  for (const [name, v] of Object.entries(ms)) derived[`idle CPU ms per s after ${settleMs / 1000}s without traffic, ${name}`] = round(percentile(v, 50), 1);
}

/** CPU time these processes use per second of `ms` with no traffic, ms/s. */
async function idleCpu(pids: number[], ms: number): Promise<number> {
  const cpuMs = cpuClock(pids);
  await sleep(ms);
  return cpuMs() / (ms / 1000);
}
