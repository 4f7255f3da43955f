import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WatchdogData } from './watchdog-thread';

/** Starts the watchdog thread; returns the function the heartbeat calls to say "the loop is alive". */
export function startWatchdog(opts: Omit<WatchdogData, 'beat'>): () => void {
  const beat = new SharedArrayBuffer(8);
  const view = new BigInt64Array(beat);
  const data: WatchdogData = { ...opts, beat };
  // No inherited flags: the thread runs only drover's compiled code, and a loader the app needs
  // (`--import` of tsx for a .ts app) would otherwise load into it too.
  const thread = new Worker(path.join(__dirname, 'watchdog-thread.js'), { workerData: data, execArgv: [] });
  thread.unref();
  return () => {
    Atomics.store(view, 0, BigInt(Date.now()));
  };
}
