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
 * The interval is the primary's to set (`setPace`, from drover:pace): short while it
 * dispatches new connections and needs to know which loops are free, longer otherwise, as each
 * beat costs both processes a wake-up (ADR 0010). So is how many beats are sent: at the idle
 * pace the worker beats every 100 ms for its own watch (block detection, loop delay, the
 * pressure sensor's start) but sends one beat a second, since the primary then dispatches
 * nothing and the first new connection waits for a fresh beat anyway (ADR 0020, session 17).
 * Every beat sent announces when the next one will be (`nextMs`) and, if fewer are sent than
 * beaten, the beat interval (`beatMs`), so the primary judges a worker late against the pace it
 * was actually told.
 */
export class Heartbeat {
  private seq = 0;
  /** Beats sent to the primary: one of every `sendEvery` on time. */
  private sendEvery: number;
  private sinceSent = 0;
  private readonly delay = new LoopDelay();
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  private loop: LoopStats = { delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0, utilization: 0 };
  private mem = process.memoryUsage();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private intervalMs: number,
    reportMs: number | undefined,
    private readonly counters: () => RequestCounters,
    private readonly send: (msg: HeartbeatMsg) => void,
    /**
     * Called on every beat with the time to the next one and how late this one fired (loop delay),
     * e.g. to tell the watchdog thread the loop is alive and the pressure sensor it may be needed.
     */
    private readonly onBeat: (nextMs: number, lateMs: number) => void = () => {},
  ) {
    this.sendEvery = sendEveryOf(intervalMs, reportMs);
  }

  start(): void {
    this.timer = setTimeout(() => this.beat(), this.intervalMs);
    this.timer.unref();
    this.beat(true, true);
  }

  /** For good (drain): a pace change after this does not start it again. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Beat at `ms` from now on, and send a beat about every `reportMs` (undefined: every beat).
   * Beats and sends once at once: the last beat announced the old pace, and the primary would
   * otherwise judge this worker against it until the next one (too early when slowing down, too
   * late when speeding up, which is when the primary wants news now).
   */
  setPace(ms: number, reportMs?: number): void {
    const sendEvery = sendEveryOf(ms, reportMs);
    if (ms === this.intervalMs && sendEvery === this.sendEvery) return;
    this.sendEvery = sendEvery;
    const changed = ms !== this.intervalMs;
    this.intervalMs = ms;
    if (!this.timer) return;
    if (changed) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.beat(), ms);
      this.timer.unref();
    }
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

  /** `onTime`: fired by the timer (its lateness is loop delay), not sent early by setPace; `send`: whatever the report interval. */
  private beat(onTime = true, send = !onTime): void {
    if (this.delay.sample(performance.now(), this.intervalMs, onTime)) this.summarize();
    this.onBeat(this.intervalMs, this.delay.lateMs);
    // A beat the primary does not need (see the class comment): the watch above was its point.
    if (!send && ++this.sinceSent < this.sendEvery) return void this.timer?.refresh();
    this.sinceSent = 0;
    const c = this.counters();
    this.send({
      type: 'drover:heartbeat',
      seq: ++this.seq,
      nextMs: this.intervalMs * this.sendEvery,
      ...(this.sendEvery > 1 && { beatMs: this.intervalMs }),
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

/** Beats per beat sent: `reportMs` in whole beats, at least one. */
function sendEveryOf(intervalMs: number, reportMs: number | undefined): number {
  return reportMs === undefined ? 1 : Math.max(1, Math.round(reportMs / intervalMs));
}
