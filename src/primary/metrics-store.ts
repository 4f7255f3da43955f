import { performance } from 'node:perf_hooks';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { MetricJson } from '../protocol';
import type { WorkerHandle } from './worker-handle';

interface Snapshot {
  metrics: MetricJson[];
  /** performance.now() when it arrived. */
  at: number;
}

export interface CollectResult {
  registry: Registry;
  /** Workers whose snapshot in this result is not fresh from this scrape (id -> slot). */
  stale: WorkerHandle[];
  /** Workers asked for a snapshot that did not answer before the deadline. */
  timedOut: WorkerHandle[];
}

/**
 * The primary's copy of every worker's metrics. prom-client's `clusterMetrics()` fails a whole
 * scrape when one worker does not answer within 5 s, and loses a dead worker's counters; here:
 *  - a scrape asks live workers for a fresh snapshot and waits at most `deadlineMs`; a worker
 *    that does not answer (blocked loop) contributes its last snapshot, reported as stale;
 *  - when a worker exits, its last snapshot's counters and histograms are *retired*: added to a
 *    running total that every later scrape includes, so totals never go down across crashes and
 *    reloads. What a worker counted after its last snapshot is lost; workers push one every
 *    `--metrics-interval` and a final one when they drain.
 */
export class MetricsStore {
  private readonly last = new Map<number, Snapshot>();
  private readonly retired = new Map<string, MetricJson>();
  private readonly waiting = new Map<number, { pending: Set<number>; done: () => void }>();
  private nextId = 1;

  onSnapshot(h: WorkerHandle, id: number, metrics: MetricJson[]): void {
    this.last.set(h.id, { metrics, at: performance.now() });
    const w = this.waiting.get(id);
    if (!w) return;
    w.pending.delete(h.id);
    if (w.pending.size === 0) w.done();
  }

  snapshotAge(h: WorkerHandle, now: number): number | undefined {
    const s = this.last.get(h.id);
    return s ? now - s.at : undefined;
  }

  /** Move an exited worker's counters and histograms into the retired totals. */
  retire(h: WorkerHandle): void {
    const snap = this.last.get(h.id);
    this.last.delete(h.id);
    for (const w of this.waiting.values()) {
      if (w.pending.delete(h.id) && w.pending.size === 0) w.done();
    }
    if (!snap) return;
    for (const m of snap.metrics) {
      // Only sums can be carried on; gauges describe a process that is gone.
      if ((m.type !== 'counter' && m.type !== 'histogram') || m.aggregator !== 'sum') continue;
      const acc = this.retired.get(m.name) ?? { ...m, values: [] };
      this.retired.set(m.name, { ...acc, values: sumValues(acc.values, m.values) });
    }
  }

  /**
   * Ask `askable` workers for a fresh snapshot, wait until all answered or `deadlineMs` passed,
   * then aggregate: retired totals + the newest snapshot of every live worker in `live`.
   */
  async collect(live: readonly WorkerHandle[], askable: readonly WorkerHandle[], deadlineMs: number): Promise<CollectResult> {
    const id = this.nextId++;
    const pending = new Set(askable.map((h) => h.id));
    if (pending.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, deadlineMs);
        function finish() {
          clearTimeout(timer);
          resolve();
        }
        this.waiting.set(id, { pending, done: finish });
        for (const h of askable) {
          if (!h.worker.isConnected()) pending.delete(h.id);
          else h.worker.send({ type: 'drover:collect', id }, undefined, {}, () => {});
        }
        if (pending.size === 0) finish();
      });
      this.waiting.delete(id);
    }
    const stale: WorkerHandle[] = [];
    const arrays: MetricJson[][] = [[...this.retired.values()]];
    const askedIds = new Set(askable.map((h) => h.id));
    for (const h of live) {
      const snap = this.last.get(h.id);
      if (!snap) continue;
      arrays.push(snap.metrics);
      if (!askedIds.has(h.id) || pending.has(h.id)) stale.push(h);
    }
    const timedOut = askable.filter((h) => pending.has(h.id));
    return { registry: AggregatorRegistry.aggregate(arrays as never), stale, timedOut };
  }
}

type Value = MetricJson['values'][number];

function valueKey(v: Value): string {
  const labels = Object.keys(v.labels).sort().map((k) => `${k}=${v.labels[k]}`);
  return `${v.metricName ?? ''}{${labels.join(',')}}`;
}

/** Series-by-series sum of two value lists (same metric), as prom-client's 'sum' aggregator does. */
export function sumValues(a: readonly Value[], b: readonly Value[]): Value[] {
  const out = new Map<string, Value>();
  for (const v of [...a, ...b]) {
    const k = valueKey(v);
    const prev = out.get(k);
    out.set(k, prev ? { ...prev, value: prev.value + v.value } : { ...v });
  }
  return [...out.values()];
}
