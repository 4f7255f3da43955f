/**
 * The primary's process metrics are prom-client's defaults less the event-loop-lag group (its
 * 10 ms monitor) and the three gauges promtool rejects: compared with collectDefaultMetrics' own
 * output, so a prom-client upgrade that changes the groups fails here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as promClient from 'prom-client';
import { registerPrimaryDefaults } from '../../src/primary/default-metrics';

const names = (r: promClient.Registry) => r.getMetricsAsArray().map((m) => m.name).sort();

describe('primary default metrics', () => {
  it("are prom-client's defaults without nodejs_eventloop_lag_* and the nodejs_active_*_total gauges", async () => {
    const all = new promClient.Registry();
    promClient.collectDefaultMetrics({ register: all, prefix: 'p_' });
    const mine = new promClient.Registry();
    registerPrimaryDefaults(mine, 'p_');

    const expected = names(all).filter((n) => !n.startsWith('p_nodejs_eventloop_lag') && !/^p_nodejs_active_\w+_total$/.test(n));
    assert.ok(names(all).some((n) => n.startsWith('p_nodejs_eventloop_lag')), 'prom-client still has the group this leaves out');
    assert.deepEqual(names(mine), expected);
    assert.ok(expected.includes('p_process_resident_memory_bytes') && expected.includes('p_nodejs_gc_duration_seconds'));
    // They collect: the text exposition has values for the process.
    assert.match(await mine.metrics(), /^p_process_cpu_user_seconds_total \d/m);
  });
});
