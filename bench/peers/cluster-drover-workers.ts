/**
 * Control peer for the peers suite: node:cluster's own primary and round-robin scheduler, with
 * workers that run drover's worker (startWorker, src/worker/start-worker.ts: the same code drover's
 * worker entry runs, not a copy) under the drover flags in DROVER_ARGS (a JSON list of
 * `--flag value` pairs, resolved by drover's own option code; the peers suite passes its lean
 * flags: request metrics off, no shedding sensor, metrics snapshots every 60 s). So it has
 * drover's request path (createAppServer: connection and request tracking, header limit, server
 * timeouts), the app loaded as drover loads it, a heartbeat over IPC that feeds the watchdog
 * thread and block detection (at drover's idle pace, 100 ms: Node's scheduler reads no beats),
 * drover's set of prom-client default metrics, and --enable-source-maps. Against lean drover it
 * isolates drover's primary (dispatcher, handle passing, supervision); against bare node:cluster,
 * the cost of those worker pieces.
 * What it leaves out of a drover worker: drover's primary protocol. The worker says hello and
 * listening once, but node's primary ignores them and sends no orders (no handed-over sockets,
 * no pace changes, no drain); its workers listen together on the one port node's round-robin
 * serves, where drover's listen on private ones.
 * Prints one JSON line {"msg":"ready","port":N} once every worker listens, as bare-cluster.js.
 */
import cluster from 'node:cluster';
import { resolveOptions } from '../../src/options';
import { workerExecArgv } from '../../src/primary/start';
import { sleepIntervalMs } from '../../src/primary/beat-pace';
import { workerConfig } from '../../src/primary/worker-config';
import { processChannel } from '../../src/worker/channel';
import { startWorker } from '../../src/worker/start-worker';

const workers = Number(process.env.WORKERS ?? 2);
const port = Number(process.env.PORT ?? 0);
const args = JSON.parse(process.env.DROVER_ARGS ?? '[]') as string[];
const flags: Record<string, string> = { workers: String(workers) };
for (let i = 0; i + 1 < args.length; i += 2) flags[args[i]!.replace(/^--/, '')] = args[i + 1]!;
if (process.env.KEEP_ALIVE_TIMEOUT_MS) flags['keep-alive-timeout'] = `${process.env.KEEP_ALIVE_TIMEOUT_MS}ms`;
// From these flags only, not from DROVER_* variables in the environment: the row runs what the suite asked for.
const options = resolveOptions(flags, {});

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
  // Node's scheduler reads no heartbeats: the pace drover's primary sets when dispatch does not
  // need them (src/primary/beat-pace.ts), as under drover's own round-robin or keep-alive traffic.
  const cfg = workerConfig(options, cluster.worker!.id, 1, '', options.heartbeatIdleIntervalMs, sleepIntervalMs(options));
  // Shared through the cluster (not exclusive): node's primary accepts and hands out connections.
  void startWorker(cfg, cfg.app, processChannel({ port, host: '127.0.0.1' }));
}
