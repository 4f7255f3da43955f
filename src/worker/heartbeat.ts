import { createHistogram, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { HeartbeatMsg, LoopStats } from '../protocol';

export interface RequestCounters {
  inFlight: number;
  connections: number;
  requests: number;
  adopted: number;
}

/** Loop delay, utilization and memory are summarized over this window; beats carry the last summary. */
const SUMMARY_WINDOW_MS = 1000;

/**
 * Sends a heartbeat every interval. Its arrival is the signal: a worker whose loop is blocked
 * stops beating, which is how the primary's dispatcher and watchdog see it. The cheap counters
 * go in every beat; the costlier summaries (histogram percentiles, memoryUsage()) are refreshed
 * once per window.
 *
 * Loop delay is how late each beat's own timer fires (a blocked loop fires it late by the
 * block), not a monitorEventLoopDelay: that one wakes the loop on a timer of its own every
 * 10 ms, and on this project's VM every wake-up of an idle process costs ~0.1-0.2 ms of CPU;
 * dropping it took an idle heartbeat from 18 to 11 ms of CPU per second (ADR 0009).
 *
 * The interval is the primary's to set (`setInterval`, from drover:pace): short while it
 * dispatches new connections and needs to know which loops are free, longer otherwise, as each
 * beat costs both processes a wake-up (ADR 0010). Every beat announces the interval it was sent
 * at (`nextMs`), so the primary judges a worker late against the pace it was actually told.
 */
export class Heartbeat {
  private seq = 0;
  /** Lateness of each beat's timer, in ns (a RecordableHistogram takes integers >= 1). */
  private readonly delay = createHistogram();
  /** When the pending beat is due (performance.now()); 0 before the first. */
  private dueAt = 0;
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  private loop: LoopStats = { delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0, utilization: 0 };
  private mem = process.memoryUsage();
  private lastSummary = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private intervalMs: number,
    private readonly counters: () => RequestCounters,
    private readonly send: (msg: HeartbeatMsg) => void,
    /** Called on every beat, e.g. to tell the watchdog thread the loop is alive. */
    private readonly onBeat: () => void = () => {},
  ) {}

  start(): void {
    this.timer = setTimeout(() => this.beat(), this.intervalMs);
    this.timer.unref();
    this.beat();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  /**
   * Beat at `ms` from now on. Beats once at once: the last beat announced the old interval, and
   * the primary would otherwise judge this worker against it until the next one (too early when
   * slowing down, too late when speeding up, which is when the primary wants news now).
   */
  setInterval(ms: number): void {
    if (ms === this.intervalMs) return;
    this.intervalMs = ms;
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.beat(), ms);
    this.timer.unref();
    this.beat(false);
  }

  get interval(): number {
    return this.intervalMs;
  }

  private summarize(now: number): void {
    const ms = (ns: number) => ns / 1e6;
    const elu = performance.eventLoopUtilization(this.elu);
    this.elu = performance.eventLoopUtilization();
    this.loop = {
      delayP50Ms: ms(this.delay.percentile(50)),
      delayP99Ms: ms(this.delay.percentile(99)),
      delayMaxMs: ms(this.delay.max),
      utilization: elu.utilization,
    };
    this.delay.reset();
    this.mem = process.memoryUsage();
    this.lastSummary = now;
  }

  /** `onTime`: fired by the timer (its lateness is loop delay), not sent early by setInterval. */
  private beat(onTime = true): void {
    const now = performance.now();
    // A beat can fire a little before `dueAt` (timers have millisecond resolution): that is 0 late.
    if (onTime && this.dueAt > 0) this.delay.record(Math.max(1, Math.round((now - this.dueAt) * 1e6)));
    if (now - this.lastSummary >= SUMMARY_WINDOW_MS) this.summarize(now);
    this.onBeat();
    const c = this.counters();
    this.send({
      type: 'drover:heartbeat',
      seq: ++this.seq,
      nextMs: this.intervalMs,
      inFlight: c.inFlight,
      connections: c.connections,
      requests: c.requests,
      adopted: c.adopted,
      loop: this.loop,
      rssBytes: this.mem.rss,
      heapUsedBytes: this.mem.heapUsed,
      heapTotalBytes: this.mem.heapTotal,
    });
    this.timer?.refresh();
    // The timer counts from the loop's clock, read before this beat ran: `now` is the closer guess.
    this.dueAt = now + this.intervalMs;
  }
}
