import * as promClient from 'prom-client';

/** The default-metrics group drover leaves out (see below). */
const SKIPPED_GROUP = 'eventLoopLag';

type Register = (registry: promClient.Registry, config: { register: promClient.Registry; prefix: string; eventLoopMonitoringPrecision: number }) => void;

/**
 * prom-client's default process metrics (CPU, memory, heap, GC, handles) into `registry`, less
 * the `nodejs_eventloop_lag_*` group. That group runs a monitorEventLoopDelay, which wakes the
 * loop every 10 ms whether or not there is work; on this project's VM each wake-up of an
 * otherwise idle process costs ~0.1-0.2 ms of CPU, so it was ~10 ms of CPU per second in each
 * process, most of what an idle primary did and half of what an idle worker did (ADR 0011).
 * drover reads loop delay from timers it runs anyway instead: the workers' heartbeats
 * (`drover_worker_event_loop_delay_seconds`) and the primary's supervisor tick
 * (`drover_primary_event_loop_delay_seconds`).
 *
 * collectDefaultMetrics registers one module per group (`prom-client/lib/metrics/<name>`, the
 * names in its `metricsList`) with no way to leave one out, so they are called here one by one as
 * it does. A unit test compares the result with collectDefaultMetrics' own, so a prom-client
 * upgrade that changes this fails loudly.
 */
export function registerDefaultMetrics(registry: promClient.Registry, prefix = ''): void {
  // collectDefaultMetrics' own defaulting (it passes the precision to every group).
  const config = { register: registry, prefix, eventLoopMonitoringPrecision: 10 };
  for (const name of promClient.collectDefaultMetrics.metricsList) {
    if (name === SKIPPED_GROUP) continue;
    (require(`prom-client/lib/metrics/${name}`) as Register)(registry, config);
  }
}
