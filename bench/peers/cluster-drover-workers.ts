/**
 * Control peer for the peers suite: node:cluster's own primary and round-robin scheduler, with
 * workers that do what a drover worker does under the drover flags in DROVER_ARGS (a JSON list
 * of `--flag value` pairs, resolved by drover's own option code; the peers suite passes its lean
 * flags: request metrics off, no shedding sensor, metrics snapshots every 60 s): drover's request
 * path (createAppServer: connection and request tracking, header limit, server timeouts), a
 * heartbeat over IPC that feeds the watchdog thread and block detection (at drover's idle pace,
 * 100 ms: Node's scheduler reads no beats), drover's set of prom-client default metrics, and
 * --enable-source-maps. Against lean drover it isolates drover's primary (dispatcher, handle
 * passing, supervision); against bare node:cluster, the cost of those worker pieces.
 * What it leaves out of a drover worker: the primary's protocol (hello, adopted acks, drain).
 * Prints one JSON line {"msg":"ready","port":N} once every worker listens, as bare-cluster.js.
 */
import cluster from 'node:cluster';
import { createDemoApp } from '../../src/demo/app';
import { resolveOptions } from '../../src/options';
import { workerExecArgv } from '../../src/primary/start';
import { workerConfig } from '../../src/primary/worker-config';
import { createAppServer } from '../../src/worker/app-server';
import { Heartbeat } from '../../src/worker/heartbeat';
import { WorkerMetrics } from '../../src/worker/metrics';
import { createPressureGate } from '../../src/worker/pressure-gate';
import { startLoopWatch } from '../../src/worker/watchdog';

const workers = Number(process.env.WORKERS ?? 2);
const port = Number(process.env.PORT ?? 0);
const args = JSON.parse(process.env.DROVER_ARGS ?? '[]') as string[];
const flags: Record<string, string> = { workers: String(workers) };
for (let i = 0; i + 1 < args.length; i += 2) flags[args[i]!.replace(/^--/, '')] = args[i + 1]!;
if (process.env.KEEP_ALIVE_TIMEOUT_MS) flags['keep-alive-timeout'] = `${process.env.KEEP_ALIVE_TIMEOUT_MS}ms`;
// From these flags only, not from DROVER_* variables in the environment: the row runs what the suite asked for.
const options = resolveOptions(flags, {});

async function worker(): Promise<void> {
  // Node's scheduler reads no heartbeats: the pace drover's primary sets when dispatch does not
  // need them (src/primary/beat-pace.ts), as under drover's own round-robin or keep-alive traffic.
  const cfg = workerConfig(options, cluster.worker!.id, 1, '', options.heartbeatIdleIntervalMs);
  const app = createDemoApp();
  app.set('x-powered-by', false);
  const metrics = new WorkerMetrics(() => {});
  let inFlight = () => 0;
  const watch = startLoopWatch(cfg, {
    bindings: {},
    inFlight: () => inFlight(),
    routeOf: (req) => metrics.red.routeOf(req),
    warn: () => {},
    report: (routes) => process.send!({ type: 'drover:blocks', routes }),
  });
  metrics.blocks = watch.blocks;
  const gate = await createPressureGate(cfg.shed, (reason) => metrics.shed(reason));
  const { server, conns } = createAppServer(cfg, app, gate, watch.blocks);
  inFlight = () => conns.counters().inFlight;
  metrics.inFlightNow = () => conns.counters().inFlight;
  if (cfg.requestMetrics) conns.onDone = (req, res, startedAt) => metrics.red.record(req, res, startedAt);
  // Shared through the cluster (not exclusive): node's primary accepts and hands out connections.
  server.listen(port, '127.0.0.1', () => {
    conns.state = 'listening';
    new Heartbeat(cfg.heartbeatIntervalMs, () => conns.counters(), (m) => process.send!(m), watch.beat).start();
    setInterval(() => void metrics.snapshot().then((m) => process.send!({ type: 'drover:metrics', id: 0, metrics: m })), cfg.metricsIntervalMs).unref();
  });
}

if (cluster.isPrimary) {
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, options) });
  let listening = 0;
  for (let i = 0; i < workers; i++) cluster.fork();
  // Heartbeats and snapshots arrive as 'message' events nobody listens to: received and parsed,
  // as drover's primary does, then dropped.
  cluster.on('listening', (_w, address) => {
    if (++listening === workers) console.log(JSON.stringify({ msg: 'ready', port: address.port }));
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  worker().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
