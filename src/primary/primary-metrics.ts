import { performance } from 'node:perf_hooks';
import * as promClient from 'prom-client';
import type { Dispatcher } from './dispatcher';
import type { CollectResult, MetricsStore } from './metrics-store';
import type { Supervisor } from './supervisor';
import type { WorkerHandle } from './worker-handle';
import { DRAIN_REASONS, EXIT_REASONS, WORKER_STATES, type WorkerState } from './worker-lifecycle';

/** Every state but stopped: a stopped worker is no process any more. */
const STATES = WORKER_STATES.filter((s) => s !== 'stopped');
/** Exits after which a slot got a new worker: all but drover's own shutdown. */
const RESTART_REASONS = EXIT_REASONS.filter((r) => r !== 'shutdown');
/** Which worker speaks for a slot: the serving one first, the one being replaced or killed last. */
const RANK: Record<WorkerState, number> = { listening: 0, retiring: 1, stalling: 2, booting: 3, stopping: 4, draining: 9, stopped: 9 };

/**
 * The worker that speaks for a slot in per-worker series. A replacement overlaps the worker it
 * replaces; a slot must never carry two live values, so draining workers are left out and a
 * serving worker wins over one being replaced or killed.
 */
export function currentBySlot(handles: readonly WorkerHandle[]): Map<number, WorkerHandle> {
  const out = new Map<number, WorkerHandle>();
  for (const h of handles) {
    if (h.state === 'draining' || h.state === 'stopped') continue;
    const cur = out.get(h.slot);
    if (!cur || RANK[h.state] < RANK[cur.state]) out.set(h.slot, h);
  }
  return out;
}

/**
 * The primary's own metrics: supervisor state, per-worker health from heartbeats, dispatch
 * counters and the health of metrics collection. Values are read from state at scrape time
 * (collect callbacks), so the supervisor and dispatcher carry no metrics code.
 */
export class PrimaryMetrics {
  readonly registry = new promClient.Registry();
  private readonly scrapeDuration: promClient.Histogram;
  private readonly collectTimeouts: promClient.Counter<'worker'>;
  private lastStale = new Set<number>();
  /** Observes how long an accepted connection waited in the primary before its handoff. */
  readonly dispatchWait: promClient.Histogram;

  constructor(sup: Supervisor, dispatcher: Dispatcher, store: MetricsStore, version: string) {
    const r = [this.registry];
    const slots = () => [...currentBySlot(sup.handles)];
    const perWorker = (name: string, help: string, value: (h: WorkerHandle, now: number) => number | undefined) =>
      new promClient.Gauge({
        name, help, labelNames: ['worker'], registers: r,
        collect() {
          this.reset();
          const now = performance.now();
          for (const [slot, h] of slots()) {
            const v = value(h, now);
            if (v !== undefined) this.set({ worker: String(slot) }, v);
          }
        },
      });
    /** A counter mirrored from a monotonic number the supervisor or dispatcher keeps. */
    const mirrored = (name: string, help: string, labelNames: string[], read: () => [Record<string, string>, number][]) =>
      new promClient.Counter({
        name, help, labelNames, registers: r,
        collect() {
          this.reset();
          for (const [labels, v] of read()) this.inc(labels, v);
        },
      });

    new promClient.Gauge({
      name: 'drover_build_info', help: 'drover version and Node.js version; always 1.',
      labelNames: ['version', 'node_version'], registers: r,
      collect() {
        this.set({ version, node_version: process.version }, 1);
      },
    });
    new promClient.Gauge({
      name: 'drover_workers', help: 'Worker processes by state.', labelNames: ['state'], registers: r,
      collect() {
        for (const state of STATES) this.set({ state }, sup.handles.filter((h) => h.state === state).length);
      },
    });
    new promClient.Gauge({
      name: 'drover_ready', help: 'What GET /readyz answers: 1 ready, 0 not ready.', registers: r,
      collect() {
        this.set(sup.isReady() ? 1 : 0);
      },
    });
    new promClient.Gauge({
      name: 'drover_workers_desired', help: 'Configured number of workers.', registers: r,
      collect() {
        this.set(sup.opts.workers);
      },
    });
    new promClient.Gauge({
      name: 'drover_generation', help: 'Newest worker generation (incremented by each reload).', registers: r,
      collect() {
        this.set(sup.generation);
      },
    });
    mirrored('drover_worker_restarts_total', `Workers that exited and were replaced, by reason (${RESTART_REASONS.join(', ')}).`, ['reason'],
      () => RESTART_REASONS.map((reason) => [{ reason }, sup.exits[reason]]));
    mirrored('drover_reloads_total', 'Rolling reloads, by result (completed, aborted).', ['result'],
      () => [[{ result: 'completed' }, sup.reloads.completed], [{ result: 'aborted' }, sup.reloads.aborted]]);
    mirrored('drover_worker_drains_total', `Worker drains started, by reason (${DRAIN_REASONS.join(', ')}).`, ['reason'],
      () => DRAIN_REASONS.map((reason) => [{ reason }, sup.drains[reason]]));

    perWorker('drover_worker_heartbeat_age_seconds', 'Time since the worker last reported; beyond --worker-timeout it is stalled.', (h, now) => h.beatAge(now) / 1000);
    perWorker('drover_worker_event_loop_utilization', 'Event-loop utilization (0..1) over the last second.', (h) => h.beat?.loop.utilization);
    perWorker('drover_worker_resident_memory_bytes', 'Resident set size of the worker process.', (h) => h.beat?.rssBytes);
    perWorker('drover_worker_heap_used_bytes', 'V8 heap used by the worker.', (h) => h.beat?.heapUsedBytes);
    perWorker('drover_worker_heap_total_bytes', 'V8 heap allocated by the worker.', (h) => h.beat?.heapTotalBytes);
    perWorker('drover_worker_open_connections', 'Connections open on the worker.', (h) => h.beat?.connections);
    perWorker('drover_worker_upgraded_connections', 'Upgraded connections (WebSockets) open on the worker; also counted in drover_worker_open_connections.', (h) => h.beat?.upgraded);
    perWorker('drover_worker_requests_in_flight', 'Requests being handled by the worker, from its last heartbeat.', (h) => h.beat?.inFlight);
    perWorker('drover_worker_generation', 'Generation of the worker serving the slot (a reload has reached every slot when all equal drover_generation).', (h) => h.generation);
    perWorker('drover_metrics_snapshot_age_seconds', "Age of the worker's newest metrics snapshot.", (h, now) => {
      const age = store.snapshotAge(h, now);
      return age === undefined ? undefined : age / 1000;
    });
    const lastStale = () => this.lastStale;
    perWorker('drover_metrics_snapshot_stale', "1 when the last scrape used an old snapshot of the worker (it did not answer in time).", (h) =>
      h.state === 'booting' ? undefined : lastStale().has(h.id) ? 1 : 0);
    new promClient.Gauge({
      name: 'drover_worker_event_loop_delay_seconds', help: 'Event-loop delay over the last second, by statistic (p50, p99, max).',
      labelNames: ['worker', 'stat'], registers: r,
      collect() {
        this.reset();
        for (const [slot, h] of slots()) {
          const l = h.beat?.loop;
          if (!l) continue;
          const worker = String(slot);
          this.set({ worker, stat: 'p50' }, l.delayP50Ms / 1000);
          this.set({ worker, stat: 'p99' }, l.delayP99Ms / 1000);
          this.set({ worker, stat: 'max' }, l.delayMaxMs / 1000);
        }
      },
    });

    const st = dispatcher.stats;
    mirrored('drover_connections_dispatched_total', 'Connections handed to a worker, by worker slot (one re-sent after its worker died counts again).', ['worker'],
      () => st.dispatchedBySlot.map((n, slot) => [{ worker: String(slot) }, n]));
    mirrored('drover_dispatch_all_stale_total', 'Connections dispatched while every worker had a stale heartbeat (given to the least stale).', [],
      () => [[{}, st.allStale]]);
    mirrored('drover_connections_queued_total', 'Connections that waited in the primary: no worker could take them (none serving; under round-robin, none free of an unacknowledged handoff), or, under least-busy, for a fresh beat after a second without a new connection.', [], () => [[{}, st.queued]]);
    mirrored('drover_connections_dropped_total', 'Connections closed because no worker could take them in time.', [], () => [[{}, st.dropped]]);
    mirrored('drover_connections_redispatched_total', 'Connections re-sent because their worker exited before adopting them.', [], () => [[{}, st.redispatched]]);
    new promClient.Gauge({
      name: 'drover_primary_event_loop_delay_seconds',
      help: "The primary's event-loop delay over the last second (p50, p99, max), as the lateness of its 100 ms supervisor tick.",
      labelNames: ['stat'], registers: r,
      collect() {
        const d = sup.loopDelay.last;
        this.set({ stat: 'p50' }, d.p50Ms / 1000);
        this.set({ stat: 'p99' }, d.p99Ms / 1000);
        this.set({ stat: 'max' }, d.maxMs / 1000);
      },
    });
    new promClient.Gauge({
      name: 'drover_heartbeat_interval_seconds',
      help: 'Interval the workers are asked to beat at: --heartbeat-interval while new connections are dispatched (least-busy), --heartbeat-idle-interval otherwise.',
      registers: r,
      collect() {
        this.set(dispatcher.pace.intervalMs / 1000);
      },
    });
    this.dispatchWait = new promClient.Histogram({
      name: 'drover_dispatch_wait_seconds', help: 'Time from accepting a connection to handing it to a worker.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1, 10], registers: r,
    });

    const unauthorized = () => this.unauthorized();
    mirrored('drover_control_unauthorized_total', 'Control-plane requests refused for a wrong or missing bearer token.', [], () => [[{}, unauthorized()]]);
    this.collectTimeouts = new promClient.Counter({
      name: 'drover_metrics_collect_timeouts_total', help: 'Snapshots requested from a worker that did not answer before the scrape deadline, by worker slot.',
      labelNames: ['worker'], registers: r,
    });
    // Each slot from the start, at 0, so rate() reads 0 rather than "no data" until a first timeout.
    for (let slot = 0; slot < sup.slots.length; slot++) this.collectTimeouts.inc({ worker: String(slot) }, 0);
    this.scrapeDuration = new promClient.Histogram({
      name: 'drover_metrics_scrape_duration_seconds', help: 'Time the primary spent answering GET /metrics (collect + aggregate + render).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: r,
    });
  }

  private unauthorized: () => number = () => 0;

  /** Where drover_control_unauthorized_total reads its count (the control server, created later). */
  countUnauthorized(read: () => number): void {
    this.unauthorized = read;
  }

  /** Records the outcome of one collection, before the registry is rendered. */
  recordCollect(result: CollectResult): void {
    this.lastStale = new Set(result.stale.map((h) => h.id));
    for (const h of result.timedOut) this.collectTimeouts.inc({ worker: String(h.slot) });
  }

  observeScrape(seconds: number): void {
    this.scrapeDuration.observe(seconds);
  }
}
