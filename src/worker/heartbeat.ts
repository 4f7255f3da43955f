import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
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
 * monitorEventLoopDelay records the time between its timer's runs, i.e. resolution + delay;
 * subtract the resolution so an idle loop reads ~0 rather than ~10 ms.
 */
const ELD_RESOLUTION_MS = 10;

/**
 * Sends a heartbeat every interval. Its arrival is the signal: a worker whose loop is blocked
 * stops beating, which is how the primary's dispatcher and watchdog see it. The cheap counters
 * go in every beat; the costlier summaries (histogram percentiles, memoryUsage()) are refreshed
 * once per window.
 */
export class Heartbeat {
  private seq = 0;
  private readonly delay = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  private loop: LoopStats = { delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0, utilization: 0 };
  private mem = process.memoryUsage();
  private lastSummary = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly counters: () => RequestCounters,
    private readonly send: (msg: HeartbeatMsg) => void,
    /** Called on every beat, e.g. to tell the watchdog thread the loop is alive. */
    private readonly onBeat: () => void = () => {},
  ) {}

  start(): void {
    this.delay.enable();
    this.timer = setTimeout(() => this.beat(), this.intervalMs);
    this.timer.unref();
    this.beat();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.delay.disable();
  }

  private summarize(now: number): void {
    const ms = (ns: number) => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
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

  private beat(): void {
    const now = performance.now();
    if (now - this.lastSummary >= SUMMARY_WINDOW_MS) this.summarize(now);
    this.onBeat();
    const c = this.counters();
    this.send({
      type: 'drover:heartbeat',
      seq: ++this.seq,
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
  }
}
