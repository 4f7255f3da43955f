import { createRequire } from 'node:module';
import * as promClient from 'prom-client';
import { registerDefaultMetrics } from '../default-metrics';
import type { MetricJson } from '../protocol';
import { SHED_REASONS } from './pressure-gate';
import { RedMetrics } from './red-metrics';

/**
 * prom-client's default metrics name three gauges with a counter's suffix, and `promtool check
 * metrics` rejects them. drover exposes them without the suffix (docs/metrics.md).
 */
const RENAMES: Record<string, string> = {
  nodejs_active_handles_total: 'nodejs_active_handles',
  nodejs_active_requests_total: 'nodejs_active_requests',
  nodejs_active_resources_total: 'nodejs_active_resources',
};

/**
 * Metrics of one worker: HTTP RED metrics (red-metrics.ts), requests shed and Node's default
 * metrics in a prom-client registry of drover's own. The user's metrics live in prom-client's
 * default registry (or the app's own prom-client copy) and are merged into each snapshot, so an
 * app registers metrics the usual way and they aggregate.
 */
export class WorkerMetrics {
  readonly registry = new promClient.Registry();
  private readonly userRegistries: promClient.Registry[] = [promClient.register];
  private readonly warned = new Set<string>();
  /** HTTP requests, duration and sizes: recorded per request outside prom-client (see red-metrics.ts). */
  readonly red = new RedMetrics();
  private readonly shedTotal = new promClient.Counter({
    name: 'http_requests_shed_total',
    help: 'Requests answered 503 by the pressure gate before reaching the app, by reason (they also count in http_requests_total).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /** Read at scrape time from the worker's own count: no per-request gauge updates. */
  private readonly inFlight = new promClient.Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests being handled right now.',
    registers: [this.registry],
    collect: () => {
      this.inFlight.set(this.inFlightNow());
    },
  });

  /** Read at scrape time: with the delay limit alone the sensor sleeps while the loop keeps time (ADR 0020). */
  private readonly sensorRunning = new promClient.Gauge({
    name: 'http_shed_sensor_running',
    help: 'Workers whose load-shedding sensor runs now (it sleeps while their loop keeps time, and with shedding off).',
    registers: [this.registry],
    collect: () => {
      this.sensorRunning.set(this.sensorRunningNow() ? 1 : 0);
    },
  });

  /** Event-loop blocks by route (src/worker/block-watch.ts), when --block-threshold is on. */
  blocks: { toJson(): MetricJson[] } | undefined;

  /** Set by the worker once its connection tracking exists. */
  inFlightNow: () => number = () => 0;
  /** Set by the worker once its pressure gate exists (none with shedding off). */
  sensorRunningNow: () => boolean = () => false;

  constructor(private readonly warn: (msg: string, extra: object) => void) {
    registerDefaultMetrics(this.registry);
    // Every known reason from the start, at 0: a series that appears only at the first shed makes
    // rate() read "no data" rather than 0 until then (Prometheus' instrumentation advice).
    for (const reason of SHED_REASONS) this.shedTotal.inc({ reason }, 0);
  }

  /** Counts a request the pressure gate answered with 503. */
  shed(reason: string): void {
    this.shedTotal.inc({ reason });
  }

  /** If the app resolves its own copy of prom-client, merge that copy's default registry too. */
  addAppRegistry(appFile: string): void {
    try {
      const appRequire = createRequire(appFile);
      if (appRequire.resolve('prom-client') === require.resolve('prom-client')) return;
      const other = appRequire('prom-client') as typeof promClient;
      this.userRegistries.push(other.register);
    } catch {
      // The app does not use prom-client: nothing to merge.
    }
  }

  /** All metrics of this worker as JSON, ready for the primary's aggregation. */
  async snapshot(): Promise<MetricJson[]> {
    const own = [...this.red.toJson(), ...(this.blocks?.toJson() ?? []), ...((await this.registry.getMetricsAsJSON()) as unknown as MetricJson[])];
    const names = new Set(own.map((m) => m.name));
    const out: MetricJson[] = own.map((m) => (RENAMES[m.name] ? { ...m, name: RENAMES[m.name]! } : m));
    for (const reg of this.userRegistries) {
      for (const m of (await reg.getMetricsAsJSON()) as unknown as MetricJson[]) {
        if (names.has(m.name)) {
          if (!this.warned.has(m.name)) {
            this.warned.add(m.name);
            this.warn('app metric has the name of a drover metric; the app one is not exported', { metric: m.name });
          }
          continue;
        }
        names.add(m.name);
        out.push(m);
      }
    }
    return out;
  }
}
