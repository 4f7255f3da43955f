/**
 * drover's process metrics are prom-client's defaults less the event-loop-lag group (its 10 ms
 * monitor): compared with collectDefaultMetrics' own output, so a prom-client upgrade that
 * changes the groups fails here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as promClient from 'prom-client';
import { registerDefaultMetrics } from '../../src/default-metrics';

const names = (r: promClient.Registry) => r.getMetricsAsArray().map((m) => m.name).sort();

describe('default process metrics', () => {
  it("are prom-client's defaults without nodejs_eventloop_lag_*", async () => {
    const all = new promClient.Registry();
    promClient.collectDefaultMetrics({ register: all, prefix: 'p_' });
    const mine = new promClient.Registry();
    registerDefaultMetrics(mine, 'p_');

    assert.ok(names(all).some((n) => n.startsWith('p_nodejs_eventloop_lag')), 'prom-client still has the group this leaves out');
    assert.deepEqual(names(mine), names(all).filter((n) => !n.startsWith('p_nodejs_eventloop_lag')));
    assert.ok(names(mine).includes('p_process_resident_memory_bytes') && names(mine).includes('p_nodejs_gc_duration_seconds'));
    // They collect: the text exposition has values for this process.
    assert.match(await mine.metrics(), /^p_process_cpu_user_seconds_total \d/m);
  });
});
