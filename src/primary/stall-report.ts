import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../log';
import { formatFrame } from '../worker/source-map';
import type { CapturedStack } from '../worker/watchdog-thread';
import type { WorkerHandle } from './worker-handle';

/**
 * The stack a stalled worker's watchdog thread captured, if it did (it writes once the loop has
 * been blocked for half the worker timeout, so by the time the primary gives up it is normally
 * there). Removes the file: one report per stall.
 */
export function takeStallReport(runtimeDir: string, pid: number): CapturedStack | undefined {
  const file = path.join(runtimeDir, `stack-${pid}.json`);
  try {
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as CapturedStack;
    fs.rmSync(file, { force: true });
    return report;
  } catch {
    return undefined;
  }
}

export function formatFrames(report: CapturedStack): string[] {
  return report.frames.map(formatFrame);
}

/** One log line per stall: where the loop is stuck (when the watchdog thread captured it). */
export function logStall(log: Logger, runtimeDir: string, h: WorkerHandle, now: number): void {
  const report = takeStallReport(runtimeDir, h.pid);
  const stack = report ? formatFrames(report) : undefined;
  log.error(
    { worker: h.slot, wid: h.id, workerPid: h.pid, heartbeatAgeMs: Math.round(h.beatAge(now)), inFlight: h.beat?.inFlight, stack },
    stack ? `worker stalled at ${stack[0]}; replacing it` : 'worker stalled (no stack captured); replacing it',
  );
}
