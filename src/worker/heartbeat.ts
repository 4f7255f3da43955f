import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { LoopDelay } from '../loop-delay';
import type { HeartbeatMsg, LoopStats } from '../protocol';

export interface RequestCounters {
  inFlight: number;
  connections: number;
  upgraded: number;
  requests: number;
  adopted: number;
}

/**
 * Sends a heartbeat every interval. Its arrival is the signal: a worker whose loop is blocked
 * stops beating, which is how the primary's dispatcher and watchdog see it. The cheap counters
 * go in every beat; the costlier summaries (histogram percentiles, memoryUsage()) are refreshed
 * once per 1 s window.
 *
 * Loop delay is how late each beat's own timer fires (src/loop-delay.ts), not a
 * monitorEventLoopDelay with a 10 ms timer of its own: dropping that took an idle heartbeat from
 * 18 to 11 ms of CPU per second on this project's VM (ADR 0009).
 *
 * The interval is the primary's to set (`setIntervalMs`, from drover:pace): short while it
 * dispatches new connections and needs to know which loops are free, longer otherwise, as each
 * beat costs both processes a wake-up (ADR 0010). Every beat announces the interval it was sent
 * at (`nextMs`), so the primary judges a worker late against the pace it was actually told.
 */
export class Heartbeat {
  private seq = 0;
  private readonly delay = new LoopDelay();
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  private loop: LoopStats = { delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0, utilization: 0 };
  private mem = process.memoryUsage();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private intervalMs: number,
    private readonly counters: () => RequestCounters,
    private readonly send: (msg: HeartbeatMsg) => void,
    /**
     * Called on every beat with the time to the next one and how late this one fired (loop delay),
     * e.g. to tell the watchdog thread the loop is alive and the pressure sensor it may be needed.
     */
    private readonly onBeat: (nextMs: number, lateMs: number) => void = () => {},
  ) {}

  start(): void {
    this.timer = setTimeout(() => this.beat(), this.intervalMs);
    this.timer.unref();
    this.beat();
  }

  /** For good (drain): a pace change after this does not start it again. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Beat at `ms` from now on. Beats once at once: the last beat announced the old interval, and
   * the primary would otherwise judge this worker against it until the next one (too early when
   * slowing down, too late when speeding up, which is when the primary wants news now).
   */
  setIntervalMs(ms: number): void {
    if (ms === this.intervalMs) return;
    this.intervalMs = ms;
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.beat(), ms);
    this.timer.unref();
    this.beat(false);
  }

  /** The delay window just closed: utilization and memory over the same second. */
  private summarize(): void {
    const elu = performance.eventLoopUtilization(this.elu);
    this.elu = performance.eventLoopUtilization();
    const d = this.delay.last;
    this.loop = { delayP50Ms: d.p50Ms, delayP99Ms: d.p99Ms, delayMaxMs: d.maxMs, utilization: elu.utilization };
    this.mem = process.memoryUsage();
  }

  /** `onTime`: fired by the timer (its lateness is loop delay), not sent early by setIntervalMs. */
  private beat(onTime = true): void {
    if (this.delay.sample(performance.now(), this.intervalMs, onTime)) this.summarize();
    this.onBeat(this.intervalMs, this.delay.lateMs);
    const c = this.counters();
    this.send({
      type: 'drover:heartbeat',
      seq: ++this.seq,
      nextMs: this.intervalMs,
      inFlight: c.inFlight,
      connections: c.connections,
      upgraded: c.upgraded,
      requests: c.requests,
      adopted: c.adopted,
      loop: this.loop,
      rssBytes: this.mem.rss,
      heapUsedBytes: this.mem.heapUsed,
      heapTotalBytes: this.mem.heapTotal,
    });
    this.timer?.refresh();
  }
}
