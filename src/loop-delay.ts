import { createHistogram, performance } from 'node:perf_hooks';

export interface DelaySummary {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Event-loop delay read from a periodic timer the process runs anyway (the worker's heartbeat,
 * the primary's supervisor tick): how late each firing is. A blocked loop fires the pending
 * timer late by the block, so a block shows at its length. Not a monitorEventLoopDelay: that
 * wakes the loop on a 10 ms timer of its own, and on this project's VM each wake-up of an
 * otherwise idle process costs ~0.1-0.2 ms of CPU (ADR 0009).
 *
 * Summaries (p50, p99, max) cover windows of `windowMs`; `last` is the latest closed window.
 */
export class LoopDelay {
  last: DelaySummary = { p50Ms: 0, p99Ms: 0, maxMs: 0 };
  /** How late the latest firing was, in ms (0 for one that did not come from the timer). */
  lateMs = 0;
  /** Lateness of each firing, in ns (a RecordableHistogram takes integers >= 1). */
  private readonly h = createHistogram();
  /** When the next firing is due (performance.now()); 0 before the first. */
  private dueAt = 0;
  private windowStart = performance.now();

  constructor(private readonly windowMs = 1000) {}

  /**
   * Call at the start of each firing, with the time until the next one. `onTime` false for a run
   * that did not come from the timer (it was not late; it only moves the next due time). Returns
   * true when this call closed a window (`last` is new).
   */
  sample(now: number, nextMs: number, onTime = true): boolean {
    // A timer can fire a little before `dueAt` (millisecond resolution): that is 0 late.
    const timed = onTime && this.dueAt > 0;
    this.lateMs = timed ? Math.max(0, now - this.dueAt) : 0;
    if (timed) this.h.record(Math.max(1, Math.round(this.lateMs * 1e6)));
    // The timer counts from the loop's clock, read before this firing ran: `now` is the closer guess.
    this.dueAt = now + nextMs;
    if (now - this.windowStart < this.windowMs) return false;
    const ms = (ns: number) => ns / 1e6;
    this.last = { p50Ms: ms(this.h.percentile(50)), p99Ms: ms(this.h.percentile(99)), maxMs: ms(this.h.max) };
    this.h.reset();
    this.windowStart = now;
    return true;
  }
}
