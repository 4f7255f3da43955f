import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MetricJson } from '../../src/protocol';
import { MetricsStore, sumValues } from '../../src/primary/metrics-store';
import { currentBySlot } from '../../src/primary/primary-metrics';
import type { WorkerHandle } from '../../src/primary/worker-handle';

const counter = (n: number, route = '/ping'): MetricJson => ({
  name: 'http_requests_total', help: 'h', type: 'counter', aggregator: 'sum',
  values: [{ value: n, labels: { route, method: 'GET' } }],
});
const gauge = (n: number): MetricJson => ({ name: 'g', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ value: n, labels: {} }] });

/** Plain stand-ins: the store only reads `id`, asks `isConnected()` and `send()`s collect requests. */
const handle = (id: number, answers?: (store: MetricsStore, msgId: number) => void, store?: MetricsStore) =>
  ({
    id,
    worker: {
      isConnected: () => true,
      send: (msg: { id: number }) => answers && store && queueMicrotask(() => answers(store, msg.id)),
    },
  }) as unknown as WorkerHandle;

async function valueOf(store: MetricsStore, live: WorkerHandle[], name: string, labels: Record<string, string> = {}) {
  const r = await store.collect(live, [], 10);
  const m = (await r.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + v.value, 0);
}

describe('metrics store', () => {
  it('sums values series by series, labels in any order', () => {
    const out = sumValues(
      [{ value: 2, labels: { a: '1', b: '2' } }, { value: 1, labels: { a: 'x' }, metricName: 'h_bucket' }],
      [{ value: 3, labels: { b: '2', a: '1' } }, { value: 5, labels: { a: 'x' }, metricName: 'h_count' }],
    );
    assert.deepEqual(out.map((v) => v.value), [5, 1, 5]);
  });

  it('retires counters of exited workers into the total; gauges go away with them', async () => {
    const store = new MetricsStore();
    const a = handle(1);
    const b = handle(2);
    store.onSnapshot(a, 0, [counter(10), gauge(7)]);
    store.onSnapshot(b, 0, [counter(5), gauge(3)]);
    assert.equal(await valueOf(store, [a, b], 'http_requests_total'), 15);
    assert.equal(await valueOf(store, [a, b], 'g'), 10);
    store.retire(a);
    const c = handle(3);
    store.onSnapshot(c, 0, [counter(1)]);
    assert.equal(await valueOf(store, [b, c], 'http_requests_total'), 16, 'a counted 10 before it died');
    assert.equal(await valueOf(store, [b, c], 'g'), 3, "a's gauge is gone");
    store.retire(b);
    store.retire(c);
    assert.equal(await valueOf(store, [], 'http_requests_total'), 16);
  });

  it('collect waits for answers, and reports who did not answer before the deadline', async () => {
    const store = new MetricsStore();
    const fast = handle(1, (s, id) => s.onSnapshot(fast, id, [counter(4)]), store);
    const stuck = handle(2);
    store.onSnapshot(fast, 0, [counter(1)]);
    store.onSnapshot(stuck, 0, [counter(2)]);
    const started = performance.now();
    const r = await store.collect([fast, stuck], [fast, stuck], 50);
    assert.ok(performance.now() - started >= 45, 'it waited for the deadline');
    assert.deepEqual(r.timedOut.map((h) => h.id), [2]);
    assert.deepEqual(r.stale.map((h) => h.id), [2]);
    const m = (await r.registry.getMetricsAsJSON()).find((x) => x.name === 'http_requests_total')!;
    assert.equal(m.values[0]!.value, 6, "fast's fresh 4 + stuck's last 2");
  });

  it('a worker that exits during a collect stops the wait', async () => {
    const store = new MetricsStore();
    const dying = handle(1);
    const started = performance.now();
    const pending = store.collect([dying], [dying], 5000);
    store.retire(dying);
    await pending;
    assert.ok(performance.now() - started < 1000);
  });
});

describe('per-worker series: one worker per slot', () => {
  const h = (slot: number, state: string) => ({ slot, state }) as unknown as WorkerHandle;
  it('prefers the serving worker; never a draining one', () => {
    const old = h(0, 'retiring');
    const fresh = h(0, 'listening');
    const draining = h(1, 'draining');
    const booting = h(1, 'booting');
    const stalled = h(2, 'stalling');
    const replacement = h(2, 'booting');
    const m = currentBySlot([old, fresh, draining, booting, stalled, replacement]);
    assert.equal(m.get(0), fresh);
    assert.equal(m.get(1), booting);
    assert.equal(m.get(2), stalled);
    assert.equal(currentBySlot([h(3, 'draining')]).size, 0);
  });
});
