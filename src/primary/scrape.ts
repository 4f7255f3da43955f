import { performance } from 'node:perf_hooks';
import * as promClient from 'prom-client';
import { registerDefaultMetrics } from '../default-metrics';
import type { MetricJson } from '../protocol';
import type { Dispatcher } from './dispatcher';
import { MetricsStore } from './metrics-store';
import { PrimaryMetrics } from './primary-metrics';
import type { Supervisor } from './supervisor';
import type { WorkerHandle } from './worker-handle';

/** prom-client's default metrics with a counter's suffix on a gauge: promtool rejects them. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Wires the metrics path of the primary: worker snapshots into the store, exits into retired
 * totals, and GET /metrics = fresh-or-last worker snapshots (bounded wait) + primary metrics.
 */
export function createScraper(sup: Supervisor, dispatcher: Dispatcher, version: string) {
  const store = new MetricsStore();
  const metrics = new PrimaryMetrics(sup, dispatcher, store, version);
  // The primary's own process metrics (memory, CPU, GC), under drover_primary_.
  registerDefaultMetrics(metrics.registry, 'drover_primary_');
  for (const name of LINT_FAILING_DEFAULTS) metrics.registry.removeSingleMetric(`drover_primary_${name}`);

  sup.on('worker-metrics', (h: WorkerHandle, id: number, m: MetricJson[]) => store.onSnapshot(h, id, m));
  sup.on('worker-gone', (h: WorkerHandle) => store.retire(h));

  // Concurrent scrapes share one collection: the IPC and aggregation work per worker stays bounded
  // however many scrapers (or a scrape storm) hit /metrics at once.
  let inflight: Promise<{ contentType: string; body: string }> | undefined;
  function scrape(): Promise<{ contentType: string; body: string }> {
    inflight ??= collectOnce().finally(() => (inflight = undefined));
    return inflight;
  }

  async function collectOnce(): Promise<{ contentType: string; body: string }> {
    const started = performance.now();
    // A stopped worker stays here until the tick forgets it and retires its counters: until then
    // its last snapshot is still its share of the totals.
    const live = sup.handles.filter((h) => h.state !== 'booting');
    // A stalling or stopping worker cannot answer; asking would only spend the deadline.
    const askable = live.filter((h) => h.state === 'listening' || h.state === 'retiring' || h.state === 'draining');
    const result = await store.collect(live, askable, sup.opts.metricsTimeoutMs);
    metrics.recordCollect(result);
    // A worker metric may not shadow a primary one (Registry.merge would throw).
    for (const m of metrics.registry.getMetricsAsArray()) result.registry.removeSingleMetric(m.name);
    metrics.observeScrape((performance.now() - started) / 1000);
    const merged = promClient.Registry.merge([result.registry, metrics.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }

  return { scrape, metrics, store };
}
