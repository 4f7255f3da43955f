import type * as http from 'node:http';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BlockingRoute, WorkerConfig } from '../protocol';
import type { StackMsg } from './block-sampler';
import { BlockWatch } from './block-watch';
import type { WatchdogData } from './watchdog-thread';

export interface LoopWatch {
  /** The heartbeat calls this on every beat ("the loop is alive"), with the time to the next beat. */
  beat: (nextMs: number) => void;
  /** Block detection by route, when --block-threshold is not 0. */
  blocks: BlockWatch | undefined;
  /** Drain began: stop sampling blocks, so no inspector session is open when the worker exits. */
  stopSampling: () => void;
}

export interface LoopWatchHooks {
  bindings: Record<string, unknown>;
  /** Requests in flight now (0 before the server exists). */
  inFlight: () => number;
  /** The route label of a request (the RED metrics' own, so both share one cardinality cap). */
  routeOf: (req: http.IncomingMessage) => string;
  warn: (fields: Record<string, unknown>, msg: string) => void;
  /** Sends the top blocking routes to the primary (drover:blocks). */
  report: (routes: BlockingRoute[]) => void;
}

/**
 * Starts what watches the worker's main loop from outside it: the watchdog thread (stall stacks,
 * orphan kill) and, with a block threshold, block detection (block-watch.ts on this thread,
 * block-sampler.ts on the watchdog thread). Called first thing, before the app loads: the app's
 * own top-level code can block too.
 */
export function startLoopWatch(cfg: Pick<WorkerConfig, 'stackCaptureAfterMs' | 'runtimeDir' | 'blockThresholdMs'>, hooks: LoopWatchHooks): LoopWatch {
  const beatBuf = new SharedArrayBuffer(8);
  const view = new BigInt64Array(beatBuf);
  const blocks = cfg.blockThresholdMs > 0 ? new BlockWatch(cfg.blockThresholdMs, hooks.routeOf, hooks.inFlight, hooks.warn, hooks.report) : undefined;
  const data: WatchdogData = {
    beat: beatBuf,
    captureAfterMs: cfg.stackCaptureAfterMs,
    runtimeDir: cfg.runtimeDir,
    primaryPid: process.ppid,
    bindings: hooks.bindings,
    blocks: blocks && { shared: blocks.sharedWatch, thresholdMs: blocks.thresholdMs },
  };
  // No inherited flags: the thread runs only drover's compiled code, and a loader the app needs
  // (`--import` of tsx for a .ts app) would otherwise load into it too.
  const thread = new Worker(path.join(__dirname, 'watchdog-thread.js'), { workerData: data, execArgv: [] });
  thread.unref();
  if (blocks) {
    thread.on('message', (m: StackMsg) => {
      if (m?.type === 'drover:stack') blocks.onStack(m.id, m.stack);
    });
  }
  return {
    beat: (nextMs) => {
      Atomics.store(view, 0, BigInt(Date.now()));
      blocks?.beat(nextMs);
    },
    blocks,
    stopSampling: () => blocks?.stopSampling(),
  };
}
