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
import { parentPort, workerData } from 'node:worker_threads';
import { BlockSampler } from './block-sampler';
import type { SharedWatch } from './block-watch';
import { originalPosition } from './source-map';

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
  frames: { functionName: string; url: string; line: number; column: number }[];
}

const data = workerData as WatchdogData;
const beat = new BigInt64Array(data.beat);
/**
 * How often the thread looks, for stalls and a dead primary (only a stuck loop needs it: an idle
 * one drains itself on 'disconnect'). Every 500 ms, or often enough for a short stall capture:
 * each wake-up of an idle worker costs CPU (issue 19; it was every 100 ms).
 */
const CHECK_MS = Math.max(20, Math.min(500, Math.floor(data.captureAfterMs / 2)));
/**
 * With block detection, while requests are in flight (the main thread's turn tick runs): a quarter
 * of the threshold. A block is then seen overdue (turn tick a quarter, margin a fifth, one check a
 * quarter) and sampled well before it ends.
 */
const FAST_CHECK_MS = data.blocks ? Math.max(5, Math.floor(data.blocks.thresholdMs / 4)) : CHECK_MS;
const sampler = data.blocks ? new BlockSampler(data.blocks.shared, data.blocks.thresholdMs) : undefined;
/** The main thread's 'drover:stop-sampling' (drain): the worker is about to exit. */
parentPort?.on('message', (m: unknown) => {
  if ((m as { type?: string } | null)?.type === 'drover:stop-sampling') sampler?.close();
});
let capturedForBeat = -1n;

function log(level: number, msg: string, extra: Record<string, unknown>): void {
  const line = { level, time: new Date().toISOString(), pid: process.pid, ...data.bindings, ...extra, msg };
  try {
    fs.writeSync(1, JSON.stringify(line) + '\n');
  } catch {
    // stdout gone (primary dead): nothing useful left to do with the line.
  }
}

function capture(blockedMs: number): void {
  const session = new Session();
  session.connectToMainThread();
  // Call frames name their script by id only; Debugger.enable replays scriptParsed for every
  // loaded script, which gives the id -> file mapping and the source map V8 saw for it.
  const scripts = new Map<string, { url: string; sourceMapURL: string | undefined }>();
  session.on('Debugger.scriptParsed', (ev) =>
    scripts.set(ev.params.scriptId, { url: ev.params.url, sourceMapURL: ev.params.sourceMapURL }),
  );
  session.once('Debugger.paused', (ev) => {
    const raw = ev.params.callFrames.slice(0, 20);
    // Resume first: mapping reads files, and the main thread should not wait for that.
    session.post('Debugger.resume', () => {
      session.post('Debugger.disable', () => session.disconnect());
    });
    const frames = raw.map((f) => {
      const script = scripts.get(f.location.scriptId);
      const url = f.url || script?.url || '<unknown>';
      const line = f.location.lineNumber + 1;
      const column = (f.location.columnNumber ?? 0) + 1;
      // Point at the TypeScript (or other compiled-from) source when the file has a source map.
      const orig = originalPosition(url, line, column, script?.sourceMapURL);
      return { functionName: f.functionName || '<anonymous>', url: orig?.file ?? url, line: orig?.line ?? line, column: orig?.column ?? column };
    });
    const report: CapturedStack = { pid: process.pid, capturedAt: new Date().toISOString(), blockedMs, frames };
    const file = path.join(data.runtimeDir, `stack-${process.pid}.json`);
    try {
      fs.writeFileSync(file, JSON.stringify(report));
    } catch {
      // runtime dir removed (primary exiting): the log line below still carries the stack.
    }
    log(40, 'event loop blocked; main-thread stack captured', {
      blockedMs,
      stack: frames.map((f) => `${f.functionName} (${f.url}:${f.line}:${f.column})`),
    });
  });
  session.post('Debugger.enable', () => session.post('Debugger.pause'));
}

/**
 * A worker whose primary died drains for up to 1 s on its own (main thread, 'disconnect'); the
 * thread kills it only if that does not happen: at once when its loop is stuck, else after this.
 */
const ORPHAN_GRACE_MS = 1500;
let orphanedAt = 0;

function check(): void {
  const last = Atomics.load(beat, 0);
  const blockedMs = last === 0n ? 0 : Date.now() - Number(last);
  if (process.ppid !== data.primaryPid) {
    orphanedAt ||= Date.now();
    if (blockedMs > 1000 || Date.now() - orphanedAt > ORPHAN_GRACE_MS) {
      log(50, 'primary is gone; worker exits', { primaryPid: data.primaryPid, blockedMs });
      process.kill(process.pid, 'SIGKILL');
    }
    return;
  }
  if (last === 0n) return; // the loop has not beaten yet (still booting)
  sampler?.check(Date.now());
  if (blockedMs >= data.captureAfterMs && capturedForBeat !== last) {
    capturedForBeat = last;
    capture(blockedMs);
  }
}

/**
 * Checks every FAST_CHECK_MS while the main thread's turn tick is armed, else every CHECK_MS, woken
 * early when it arms (Atomics.waitAsync does not block this thread's loop, which delivers the
 * inspector's replies). An idle worker's watchdog thus wakes no more often than without blocks.
 */
/** Atomics.waitAsync (V8 has it since Node 16; TypeScript's ES2023 lib does not declare it). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<unknown> | string };
}).waitAsync;

function schedule(): void {
  const armed = sampler?.armed;
  if (armed && Atomics.load(armed, 0) === 1) return void setTimeout(tick, FAST_CHECK_MS);
  if (!armed) return void setTimeout(tick, CHECK_MS);
  const waited = waitAsync(armed, 0, 0, CHECK_MS);
  if (waited.async) void (waited.value as Promise<unknown>).then(tick);
  else setImmediate(tick);
}

function tick(): void {
  check();
  schedule();
}

// Keeps the thread alive whatever schedule() waits on (a pending waitAsync does not); the main
// thread unrefs the Worker object, so this never keeps the process alive by itself.
setInterval(() => {}, 2 ** 30);
schedule();
