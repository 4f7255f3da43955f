/**
 * Runs in a worker_thread inside each drover worker. Two jobs the blocked main thread cannot do:
 *
 * 1. Capture the main thread's JS stack while its loop is stuck. `--report-on-signal` does not
 *    help (the report is written only once the loop unblocks); the inspector does: pausing the
 *    main thread through `Session.connectToMainThread()` returns its call frames within ~20 ms
 *    even mid-spin. The stack is written to a file the primary reads when it declares the stall.
 * 2. Kill the process when the primary is gone. A worker spinning in a loop never sees the IPC
 *    disconnect, so it would outlive a SIGKILLed primary as an orphan.
 *
 * Output uses fs.writeSync: console output of a worker thread is relayed through the main
 * thread, which is exactly the thread that is stuck.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Session } from 'node:inspector';
import { workerData } from 'node:worker_threads';
import { BlockSampler } from './block-sampler';
import type { SharedWatch } from './block-watch';
import { formatFrame, sourceFrame, type SourceFrame } from './source-map';

export interface WatchdogData {
  /** BigInt64Array[0] = Date.now() of the main loop's last beat. */
  beat: SharedArrayBuffer;
  captureAfterMs: number;
  runtimeDir: string;
  primaryPid: number;
  bindings: Record<string, unknown>;
  /** Block detection (block-watch.ts), when --block-threshold is not 0. */
  blocks?: { shared: SharedWatch; thresholdMs: number };
}

export interface CapturedStack {
  pid: number;
  capturedAt: string;
  blockedMs: number;
  frames: SourceFrame[];
}

const data = workerData as WatchdogData;
const beat = new BigInt64Array(data.beat);
/**
 * How often the thread looks, for stalls and a dead primary (only a stuck loop needs it: an idle
 * one drains itself on 'disconnect'). Every 500 ms, or often enough for a short stall capture:
 * each wake-up of an idle worker costs CPU (issue 19; it was every 100 ms).
 */
const CHECK_MS = Math.max(20, Math.min(500, Math.floor(data.captureAfterMs / 2)));
const sampler = data.blocks ? new BlockSampler(data.blocks.shared, data.blocks.thresholdMs) : undefined;
/** What the thread sleeps on: block detection's Stopped cell (the main thread notifies it at drain), else a cell nobody changes. */
const sleepCell = sampler?.control ?? new Int32Array(new SharedArrayBuffer(4));
let capturedForBeat = -1n;

function log(level: number, msg: string, extra: Record<string, unknown>): void {
  const line = { level, time: new Date().toISOString(), pid: process.pid, ...data.bindings, ...extra, msg };
  try {
    fs.writeSync(1, JSON.stringify(line) + '\n');
  } catch {
    // stdout gone (primary dead): nothing useful left to do with the line.
  }
}

/** Pauses the main thread once and records its stack; settles once the loop was resumed and the stack written. */
function capture(blockedMs: number): Promise<void> {
  const session = new Session();
  session.connectToMainThread();
  // Call frames name their script by id only; Debugger.enable replays scriptParsed for every
  // loaded script, which gives the id -> file mapping and the source map V8 saw for it.
  const scripts = new Map<string, { url: string; sourceMapURL?: string }>();
  session.on('Debugger.scriptParsed', (ev) => scripts.set(ev.params.scriptId, ev.params));
  return new Promise((resolve) => {
    session.once('Debugger.paused', (ev) => {
      const raw = ev.params.callFrames.slice(0, 20);
      // Resume first: mapping reads files, and the main thread should not wait for that.
      session.post('Debugger.resume', () => {
        session.post('Debugger.disable', () => {
          session.disconnect();
          resolve();
        });
      });
      const frames = raw.map((f) => sourceFrame(f, scripts.get(f.location.scriptId)));
      const report: CapturedStack = { pid: process.pid, capturedAt: new Date().toISOString(), blockedMs, frames };
      const file = path.join(data.runtimeDir, `stack-${process.pid}.json`);
      try {
        fs.writeFileSync(file, JSON.stringify(report));
      } catch {
        // runtime dir removed (primary exiting): the log line below still carries the stack.
      }
      log(40, 'event loop blocked; main-thread stack captured', { blockedMs, stack: frames.map(formatFrame) });
    });
    session.post('Debugger.enable', () => session.post('Debugger.pause'));
  });
}

/**
 * A worker whose primary died drains for up to 1 s on its own (main thread, 'disconnect'); the
 * thread kills it only if that does not happen: at once when its loop is stuck, else after this.
 */
const ORPHAN_GRACE_MS = 1500;
let orphanedAt = 0;

/** Whether the primary is gone; kills this worker if it did not drain on its own in time. */
function orphaned(now: number): boolean {
  if (process.ppid === data.primaryPid) return false;
  const last = Atomics.load(beat, 0);
  const blockedMs = last === 0n ? 0 : now - Number(last);
  orphanedAt ||= now;
  if (blockedMs > 1000 || now - orphanedAt > ORPHAN_GRACE_MS) {
    log(50, 'primary is gone; worker exits', { primaryPid: data.primaryPid, blockedMs });
    process.kill(process.pid, 'SIGKILL');
  }
  return true;
}

/** One look; a promise while inspector work it started is under way (it needs this thread's loop). */
function check(now: number): Promise<void> | undefined {
  if (orphaned(now)) return undefined;
  const last = Atomics.load(beat, 0);
  if (last === 0n) return undefined; // the loop has not beaten yet (still booting)
  const blockedMs = now - Number(last);
  if (blockedMs >= data.captureAfterMs && capturedForBeat !== last) {
    capturedForBeat = last;
    return capture(blockedMs);
  }
  return sampler?.check(now);
}

/**
 * The thread sleeps in a blocking Atomics.wait between looks, not on its event loop: each wake-up
 * costs CPU (on this project's 2-core VM ~65 µs through Atomics.wait, ~130 µs through a libuv
 * timer; ADR 0018), and block detection looks about once per heartbeat while requests come.
 * It wakes when the next look is due (the sampler's, at most CHECK_MS away), or at once when the
 * main thread drains.
 */
function run(): void {
  for (;;) {
    let now = Date.now();
    const state = Atomics.load(sleepCell, 0);
    const wakeAt = Math.min(now + CHECK_MS, sampler?.nextLookAt(now) ?? Infinity);
    if (wakeAt > now) Atomics.wait(sleepCell, 0, state, wakeAt - now);
    now = Date.now();
    sampler?.tidy(now);
    const work = check(now);
    if (work) return awaitWork(work);
  }
}

/**
 * Inspector work (a sample, a stall capture) needs the event loop, which delivers the inspector's
 * replies: the thread returns to its loop until the work is done. Meanwhile it still looks for a
 * dead primary on a timer, since a main thread stuck in a native call (a child process run
 * synchronously) answers the inspector only once that call returns.
 */
function awaitWork(work: Promise<void>): void {
  const orphanTimer = setInterval(() => orphaned(Date.now()), CHECK_MS);
  void work.finally(() => {
    clearInterval(orphanTimer);
    setImmediate(run);
  });
}

// Keeps the thread alive while it waits on inspector work in its loop; the main thread unrefs the
// Worker object, so this never keeps the process alive by itself.
setInterval(() => {}, 2 ** 30);
setImmediate(run);
