/**
 * One process serving the demo app through a worker's request path, for the cost suite to count
 * under callgrind: no primary, no IPC, no heartbeats, one process and one connection, so the
 * counts of a fresh process repeat to ~1 % and, once the JIT has warmed up, differences of a few
 * percent between variants can be seen.
 *   REQUEST_PATH=express         the app alone: http.createServer(app)
 *   REQUEST_PATH=drover          drover's worker path (app-server.ts): tracking, header limit,
 *                                pressure gate at its defaults; request metrics off
 *   REQUEST_PATH=drover-metrics  the same with request metrics on
 *   REQUEST_PATH=drover-blocks   the same with block detection's per-request part (two clock
 *                                reads, the sign of life and the marker, src/worker/block-watch.ts):
 *                                a worker's defaults
 * Prints `ready <port>` once listening on PORT (0: any free port).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDemoApp } from '../../src/demo/app';
import { defaults, type DroverOptions } from '../../src/options';
import { workerConfig } from '../../src/primary/worker-config';
import { createAppServer } from '../../src/worker/app-server';
import { BlockWatch } from '../../src/worker/block-watch';
import { WorkerMetrics } from '../../src/worker/metrics';
import { createPressureGate } from '../../src/worker/pressure-gate';

export const REQUEST_PATHS = ['express', 'drover', 'drover-metrics', 'drover-blocks'] as const;

async function main(): Promise<void> {
  const variant = process.env.REQUEST_PATH ?? '';
  if (!(REQUEST_PATHS as readonly string[]).includes(variant)) throw new Error(`REQUEST_PATH must be one of ${REQUEST_PATHS.join(', ')}`);
  const app = createDemoApp();
  app.set('x-powered-by', false); // as drover's worker does
  // Under callgrind a loop can stall for seconds (valgrind runs threads one at a time): a stall
  // past the keep-alive timeout would close the client's connection under its next request.
  const keepAliveTimeoutMs = 60_000;
  let server: http.Server;
  if (variant === 'express') {
    server = http.createServer({ keepAliveTimeout: keepAliveTimeoutMs }, app);
  } else {
    // Defaults, but for the timeouts: callgrind's ~50x slowdown reads as loop delay, and shed
    // requests (503) would be cheaper ones. The gate still samples and checks each request.
    const cfg = workerConfig({ ...defaults, workers: 1, shedLoopDelayMs: 60_000, keepAliveTimeoutMs } as DroverOptions, 0, 1, '', defaults.heartbeatIntervalMs);
    const metrics = new WorkerMetrics(() => {});
    const gate = await createPressureGate(cfg.shed, (reason) => metrics.shed(reason));
    // No watchdog thread here: what a request pays is the sign of life and the marker; sampling
    // happens only during a block.
    const blocks = variant === 'drover-blocks' ? new BlockWatch(defaults.blockThresholdMs, (req) => metrics.red.routeOf(req), () => made.conns.counters().inFlight, () => {}, () => {}) : undefined;
    const made = createAppServer(cfg, app, gate, blocks);
    if (variant === 'drover-metrics' || variant === 'drover-blocks') made.conns.onDone = (req, res, startedAt) => metrics.red.record(req, res, startedAt);
    made.conns.state = 'listening';
    server = made.server;
  }
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`);
  });
}

// Run only as a script: the cost suite imports REQUEST_PATHS from here.
if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
