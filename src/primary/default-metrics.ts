import * as promClient from 'prom-client';

/** prom-client's default metrics with a counter's suffix on a gauge: promtool rejects them. */
const LINT_FAILING = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The default-metrics group left out of the primary (see below). */
export const SKIPPED_GROUP = 'eventLoopLag';

type Register = (registry: promClient.Registry, config: promClient.DefaultMetricsCollectorConfiguration<'text/plain; version=0.0.4; charset=utf-8'>) => void;

/**
 * prom-client's default process metrics for the primary (memory, CPU, GC, handles), under
 * `prefix`, less two kinds:
 * - the `nodejs_eventloop_lag_*` group: its monitorEventLoopDelay wakes the loop every 10 ms,
 *   and the primary has little else to wake for (idle, or under keep-alive load, which it never
 *   sees). Those were ~100 of its ~130 wake-ups a second, each ~0.1-0.2 ms of CPU on this
 *   project's VM (ADR 0011). The primary's loop delay is read from its supervisor tick instead
 *   (`drover_primary_event_loop_delay_seconds`).
 * - the `nodejs_active_*_total` gauges, which promtool rejects.
 *
 * collectDefaultMetrics registers one module per group (`prom-client/lib/metrics/<name>`, the
 * names in its `metricsList`) with no way to leave one out, so they are called here one by one as
 * it does. A unit test compares the result with collectDefaultMetrics' own, so a prom-client
 * upgrade that changes this fails loudly.
 */
export function registerPrimaryDefaults(registry: promClient.Registry, prefix: string): void {
  // collectDefaultMetrics' own defaulting (it passes the precision to every group).
  const config = { register: registry, prefix, eventLoopMonitoringPrecision: 10 };
  for (const name of promClient.collectDefaultMetrics.metricsList) {
    if (name === SKIPPED_GROUP) continue;
    (require(`prom-client/lib/metrics/${name}`) as Register)(registry, config);
  }
  for (const name of LINT_FAILING) registry.removeSingleMetric(prefix + name);
}
