import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WatchdogData } from './watchdog-thread';

/** Starts the watchdog thread; returns the function the heartbeat calls to say "the loop is alive". */
export function startWatchdog(opts: Omit<WatchdogData, 'beat'>): () => void {
  const beat = new SharedArrayBuffer(8);
  const view = new BigInt64Array(beat);
  const data: WatchdogData = { ...opts, beat };
  const thread = new Worker(path.join(__dirname, 'watchdog-thread.js'), { workerData: data });
  thread.unref();
  return () => {
    Atomics.store(view, 0, BigInt(Date.now()));
  };
}
