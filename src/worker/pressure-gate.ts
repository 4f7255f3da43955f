import type * as http from 'node:http';
import type { IntervalHistogram } from 'node:perf_hooks';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { WorkerConfig } from '../protocol';

/** Why a request was shed: the label values of `http_requests_shed_total`. */
export const SHED_REASONS = ['event_loop_delay', 'event_loop_utilization', 'heap', 'rss'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

/** How often the sensor samples; its delay figure is the mean over one sample. */
const SAMPLE_INTERVAL_MS = 250;
/**
 * The period of the sensor's delay histogram. under-pressure asks for 10 ms, and each reading is
 * a timer wake-up of the worker: 100 a second while requests come, ~11 ms of CPU per second per
 * worker on this project's VM (a wake-up costs ~0.1 ms here; issue 19). At 50 ms a sample still
 * holds 5 readings. under-pressure subtracts its own 10 ms from the histogram's mean; loopDelay
 * takes off the rest.
 */
const SENSOR_RESOLUTION_MS = 50;
const UNDER_PRESSURE_RESOLUTION_MS = 10;
const RETRY_AFTER_S = 1;
/**
 * @fastify/under-pressure, loaded so that drover sees the delay histogram it creates: 9.2 starts
 * a `monitorEventLoopDelay({ resolution: 10 })` at registration and never disables it (its
 * onClose clears only its timers), so a closed sensor would go on waking the worker, and each
 * restart would add one more histogram. The plugin takes `monitorEventLoopDelay` from
 * `node:perf_hooks` when it is first loaded: for that one require, the export is a wrapper that
 * creates the histogram at SENSOR_RESOLUTION_MS and reports it to `onHistogram`; the export
 * itself is put back at once, so the app's own calls are untouched.
 */
let onHistogram: ((h: IntervalHistogram) => void) | undefined;
const underPressure: FastifyPluginAsync = (() => {
  // The module object itself (an `import *` namespace would be a read-only copy).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const perf = require('node:perf_hooks') as typeof import('node:perf_hooks');
  const original = perf.monitorEventLoopDelay;
  perf.monitorEventLoopDelay = (options) => {
    const h = original({ ...options, resolution: SENSOR_RESOLUTION_MS });
    onHistogram?.(h);
    return h;
  };
  try {
    // module.exports is the fastify-plugin wrapped plugin (its decorators reach the root
    // instance); its `.default` is the bare function, which would keep them in a child context.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@fastify/under-pressure') as FastifyPluginAsync;
  } finally {
    perf.monitorEventLoopDelay = original;
  }
})();

/** How often the running sensor checks whether requests still come. */
const IDLE_CHECK_MS = 1000;

export interface PressureGate {
  /** Sheds the request if the worker is under pressure: answers 503 and returns true. */
  shed(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  /** A heartbeat fired `ms` late (the loop's delay as drover sees it anyway). */
  loopLate(ms: number): void;
  /** Whether the sensor runs now (it sleeps while idle or, with the delay limit alone, while the loop keeps time). */
  readonly running: boolean;
  close(): Promise<void>;
}

/**
 * The sensor's delay figure for the last sample. When the loop was blocked through a whole sample
 * the sensor's histogram holds no reading and it reports Infinity, which would shed the next
 * 250 ms of requests at any threshold (measured: after 300 ms blocks, every following /ping got
 * 503 with --shed-loop-delay 5s). All that sample says is that the delay was at least one sample
 * interval: that lower bound is what the threshold is compared with.
 */
function loopDelay(reported: number): number {
  return Number.isFinite(reported) ? Math.max(0, reported - (SENSOR_RESOLUTION_MS - UNDER_PRESSURE_RESOLUTION_MS)) : SAMPLE_INTERVAL_MS;
}

/** Without a request for this long the sensor stops; the next request starts it again. */
export const SENSOR_IDLE_MS = 10_000;

type SensorUsage = { eventLoopDelay: number; eventLoopUtilized: number; heapUsed: number; rssBytes: number };

/**
 * Load shedding with @fastify/under-pressure as the sensor. It is a Fastify plugin: registered on
 * a Fastify instance that never listens, it samples event-loop delay, utilization and memory and
 * exposes `memoryUsage()`; the gate in front of the Express app reads those samples on each
 * request. Under pressure, a request gets 503 + Retry-After + `Connection: close`: the client
 * retries on a new connection, which the primary hands to a less busy worker. The sensor
 * averages each sample, so one isolated stall can slip by: the primary's heartbeat watchdog is
 * the second line.
 *
 * The sensor runs only while it is needed (issue 19): its delay histogram is a
 * monitorEventLoopDelay, which wakes the worker 20 times a second (SENSOR_RESOLUTION_MS) with
 * nothing to protect when no request comes, and its Fastify costs every request CPU. It stops
 * after SENSOR_IDLE_MS without a request (or, with the delay limit alone, without a late loop:
 * IdleStoppingSensor). A new one starts on the next request (or late beat); no request is shed
 * before its first sample (250 ms): the same blind spot the sampling already has at any time.
 * ADR 0020 measures both sides.
 */
export async function createPressureGate(shed: WorkerConfig['shed'], onShed: (reason: ShedReason) => void): Promise<PressureGate | undefined> {
  const enabled = shed.loopDelayMs > 0 || shed.utilization < 1 || shed.heapBytes > 0 || shed.rssBytes > 0;
  if (!enabled) return undefined;
  const sensor = new IdleStoppingSensor(shed);
  if (!sensor.dormant) await sensor.start();
  const reasonNow = (): ShedReason | undefined => {
    const m = sensor.usage();
    if (!m) return undefined;
    if (shed.loopDelayMs > 0 && loopDelay(m.eventLoopDelay) > shed.loopDelayMs) return 'event_loop_delay';
    if (shed.utilization < 1 && m.eventLoopUtilized > shed.utilization) return 'event_loop_utilization';
    if (shed.heapBytes > 0 && m.heapUsed > shed.heapBytes) return 'heap';
    if (shed.rssBytes > 0 && m.rssBytes > shed.rssBytes) return 'rss';
    return undefined;
  };
  return {
    shed(req, res) {
      const reason = reasonNow();
      if (!reason) return false;
      res.setHeader('Connection', 'close');
      const url = req.url ?? '/';
      if (shed.exempt.some((prefix) => url.startsWith(prefix))) return false;
      onShed(reason);
      const body = JSON.stringify({ error: { code: 'OVERLOADED', message: 'the server is overloaded; retry shortly', reason } });
      res.writeHead(503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'retry-after': String(RETRY_AFTER_S),
      });
      res.end(body);
      return true;
    },
    loopLate: (ms) => sensor.loopLate(ms),
    get running() {
      return sensor.running;
    },
    close: () => sensor.stop(),
  };
}

/**
 * under-pressure on a Fastify instance that exists only while it is needed. States: running (a
 * Fastify instance, a 1 s idle check) → stopped after SENSOR_IDLE_MS without a `usage()` call →
 * starting on the next call (usage undefined until ready) → running.
 *
 * With the loop-delay limit alone (drover's default) the sensor is also *dormant* while the loop
 * keeps time: the heartbeat already measures how late its timer fires, and a loop that is never
 * late by half the limit cannot average past it. So the sensor starts on a beat that late (not on
 * a request), and stops after SENSOR_IDLE_MS without one; until the first start the worker never
 * loads Fastify, whose modules, instance and gate cost ~5 % of a small request's CPU (ADR 0020).
 * Heap, RSS and utilization limits have no such outside sign: with any of them the sensor runs
 * whenever requests come, as before.
 */
export class IdleStoppingSensor {
  private fastify: FastifyInstance | undefined;
  /** The running sensor's delay histogram (see underPressure above): disabled when it stops. */
  private histograms: IntervalHistogram[] = [];
  private starting: Promise<void> | undefined;
  /** usage() calls since the idle check last looked. */
  private uses = 0;
  private idleChecks = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Dormant mode: a beat at least this late starts the sensor (half the delay limit); 0 = not dormant. */
  private readonly wakeLateMs: number;
  /** When a beat was last that late (performance.now()). */
  private lateAt = -Infinity;

  constructor(
    private readonly shed: WorkerConfig['shed'],
    private readonly idleMs = SENSOR_IDLE_MS,
    private readonly checkMs = IDLE_CHECK_MS,
  ) {
    const delayOnly = shed.utilization >= 1 && shed.heapBytes === 0 && shed.rssBytes === 0;
    this.wakeLateMs = delayOnly ? shed.loopDelayMs / 2 : 0;
  }

  get running(): boolean {
    return this.fastify !== undefined;
  }

  /** True when a late loop, not a request, starts this sensor (the delay limit alone). */
  get dormant(): boolean {
    return this.wakeLateMs > 0;
  }

  /** The sensor's last sample, or undefined while it is stopped or starting (which this call starts unless dormant). */
  usage(): SensorUsage | undefined {
    this.uses++;
    if (this.fastify) return (this.fastify as unknown as { memoryUsage(): SensorUsage }).memoryUsage();
    if (!this.dormant) void this.start();
    return undefined;
  }

  /** A heartbeat fired `ms` late: a dormant sensor starts if that is half the limit or more. */
  loopLate(ms: number): void {
    if (!this.dormant || ms < this.wakeLateMs) return;
    this.lateAt = performance.now();
    if (!this.fastify) void this.start();
  }

  start(): Promise<void> {
    this.starting ??= this.open().finally(() => (this.starting = undefined));
    return this.starting;
  }

  async stop(): Promise<void> {
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    const f = this.fastify;
    this.fastify = undefined;
    for (const h of this.histograms) h.disable();
    this.histograms = [];
    await f?.close();
  }

  private async open(): Promise<void> {
    // Fastify is required here, not at the top: with shedding off (--shed-loop-delay 0ms and no
    // other limit) the worker never loads it, nor ajv and the rest of its ~250 modules: 1.5 MB of
    // source and ~4 MB of the worker's heap after GC (issue 19). CPU per request side by side read
    // 0.988 of loading it eagerly, inside what that method resolves: no gain shown, none lost.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const f = (require('fastify') as typeof import('fastify')).default({ logger: false });
    onHistogram = (h) => this.histograms.push(h);
    try {
      await f.register(underPressure, {
        maxEventLoopDelay: this.shed.loopDelayMs,
        maxEventLoopUtilization: this.shed.utilization < 1 ? this.shed.utilization : 0,
        maxHeapUsedBytes: this.shed.heapBytes,
        maxRssBytes: this.shed.rssBytes,
        sampleInterval: SAMPLE_INTERVAL_MS,
        eventLoopUtilizationMode: 'interval',
      } as never);
      await f.ready();
    } finally {
      onHistogram = undefined;
    }
    this.fastify = f;
    this.uses = 0;
    this.idleChecks = 0;
    this.idleTimer = setInterval(() => this.checkIdle(), this.checkMs);
    this.idleTimer.unref();
  }

  private checkIdle(): void {
    this.idleChecks = this.uses === 0 ? this.idleChecks + 1 : 0;
    this.uses = 0;
    const calm = this.dormant && performance.now() - this.lateAt >= this.idleMs;
    if (calm || this.idleChecks * this.checkMs >= this.idleMs) void this.stop();
  }
}
