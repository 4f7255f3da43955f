/**
 * The IPC protocol between the drover primary and its workers.
 *
 *   clients ──TCP──▶ primary (dispatcher: the listening handle's accepts, never read)
 *                      │  drover:socket  + TCP handle     ─────────▶ worker
 *                      │  ◀──────────────── drover:adopted {id, inFlight}
 *                      │  drover:drain {timeouts}       ─────────▶ worker
 *                      │  ◀──── drover:hello / drover:listening / drover:heartbeat
 *                      │  ◀──── drover:app-error (then exit APP_LOAD_ERROR)
 *                      │  ◀──── drover:signal (a listening worker got SIGTERM, any worker SIGINT; the primary decides. A booting worker exits on SIGTERM)
 *                      │  drover:collect {id}           ─────────▶ worker
 *                      │  drover:pace {intervalMs, reportMs} ────▶ worker (heartbeat interval, how often beats are sent)
 *                      │  ◀──── drover:metrics {id, metrics} (id 0: periodic push, last one at drain)
 *                      │  ◀──── drover:blocks {routes} (after a block of the loop, at most 1/s)
 *                    worker: http.Server on a private loopback port (so its timeouts run),
 *                            fed the adopted sockets; the user's Express app inside.
 *
 * Other libraries share the channel (prom-client sends `prom-client:*`), so every drover
 * message carries one namespaced `type`, and receivers ignore types that are not theirs.
 * A reload may fork workers from newer files than the running primary: both sides check
 * PROTOCOL_VERSION at hello.
 */
// 2: heartbeats announce their next interval (nextMs), and the primary sets it (drover:pace).
export const PROTOCOL_VERSION = 2;

/** Loop health over the worker's last summary window (about one second). */
export interface LoopStats {
  /** Event-loop delay percentiles and max, ms. */
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  /** Event-loop utilization 0..1. */
  utilization: number;
}

export interface HeartbeatMsg {
  type: 'drover:heartbeat';
  seq: number;
  /** The next beat the primary receives is due this long after this one. */
  nextMs: number;
  /**
   * The worker's own beat interval, when it sends fewer beats than it beats (at the idle pace it
   * beats every 100 ms for its own watch and sends one a second): the primary's stall check allows
   * for the beats it was not sent. Absent: every beat is sent. Added without a protocol bump:
   * an older primary ignores it, and an older worker sends every beat.
   */
  beatMs?: number;
  /** Requests being handled right now. */
  inFlight: number;
  /** Open connections (adopted sockets not yet closed). */
  connections: number;
  /**
   * Of those, the ones an 'upgrade' handed to the app (WebSockets). Added without a protocol
   * bump: a newer worker's extra field is ignored by an older primary.
   */
  upgraded: number;
  /** Requests completed since the worker started. */
  requests: number;
  /** Sockets adopted since the worker started. */
  adopted: number;
  loop: LoopStats;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
}

export interface HelloMsg {
  type: 'drover:hello';
  protocol: number;
  pid: number;
}
export interface ListeningMsg {
  type: 'drover:listening';
  /** The worker's private loopback port (debugging aid; clients use the app port). */
  privatePort: number;
}
export interface AdoptedMsg {
  type: 'drover:adopted';
  id: number;
  /**
   * Requests in flight in the worker as it acknowledges (before it reads the new connection):
   * least-busy's load figure, fresher than the last heartbeat's whenever connections arrive
   * faster than beats. Optional: a worker forked from older files during a reload sends none.
   */
  inFlight?: number;
}
export interface AppErrorMsg {
  type: 'drover:app-error';
  message: string;
  stack: string | undefined;
}
export interface SignalMsg {
  type: 'drover:signal';
  signal: 'SIGTERM' | 'SIGINT';
}
/** One metric as prom-client's `getMetricsAsJSON()` gives it (the input of its aggregate()). */
export interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

export interface MetricsMsg {
  type: 'drover:metrics';
  /** The collect request answered, or 0 for a periodic or final push. */
  id: number;
  metrics: MetricJson[];
}

/**
 * One route's blocks of a worker's event loop (src/worker/block-watch.ts): a synchronous stretch
 * longer than --block-threshold, attributed to the request whose code was running.
 */
export interface BlockingRoute {
  /** Express route template, '(unmatched)' for a request no route matched, '(none)' when no request's code ran. */
  route: string;
  count: number;
  /** Blocked time in all, seconds. */
  seconds: number;
  maxMs: number;
  lastMs: number;
  /** ISO time the last block of this route ended. */
  lastAt: string;
  /** Where the loop was during one of this route's blocks (innermost frame first, source-mapped); at most one capture per route per minute. */
  stack?: string[];
  /** ISO time of that capture. */
  stackAt?: string;
}

/**
 * The worker's top blocking routes (by blocked seconds), sent after a block at most once a
 * second. A new message type needs no protocol bump: an older primary ignores it.
 */
export interface BlocksMsg {
  type: 'drover:blocks';
  routes: BlockingRoute[];
}

export interface DrainedMsg {
  type: 'drover:drained';
  /** Connections force-closed at the deadline (0 after a clean drain). */
  forced: number;
}

export type WorkerToPrimary =
  | HelloMsg
  | ListeningMsg
  | HeartbeatMsg
  | AdoptedMsg
  | AppErrorMsg
  | SignalMsg
  | MetricsMsg
  | BlocksMsg
  | DrainedMsg;

export interface SocketMsg {
  type: 'drover:socket';
  id: number;
}
export interface DrainMsg {
  type: 'drover:drain';
  timeoutMs: number;
  idleGraceMs: number;
}
export interface ProtocolRejectMsg {
  type: 'drover:protocol-reject';
  expected: number;
}

export interface CollectMsg {
  type: 'drover:collect';
  id: number;
}
/** Beat at this interval from now on (the primary's heartbeat pace, src/primary/beat-pace.ts). */
export interface PaceMsg {
  type: 'drover:pace';
  intervalMs: number;
  /** Send a beat to the primary about this often (a whole number of beats); absent: every beat. */
  reportMs?: number;
}

export type PrimaryToWorker = SocketMsg | DrainMsg | ProtocolRejectMsg | CollectMsg | PaceMsg;

const workerTypes = new Set<string>([
  'drover:hello',
  'drover:listening',
  'drover:heartbeat',
  'drover:adopted',
  'drover:app-error',
  'drover:signal',
  'drover:metrics',
  'drover:blocks',
  'drover:drained',
]);
const primaryTypes = new Set<string>(['drover:socket', 'drover:drain', 'drover:protocol-reject', 'drover:collect', 'drover:pace']);

function hasType(msg: unknown): msg is { type: string } {
  return typeof msg === 'object' && msg !== null && typeof (msg as { type?: unknown }).type === 'string';
}

export function isWorkerMessage(msg: unknown): msg is WorkerToPrimary {
  return hasType(msg) && workerTypes.has(msg.type);
}

export function isPrimaryMessage(msg: unknown): msg is PrimaryToWorker {
  return hasType(msg) && primaryTypes.has(msg.type);
}

/** What the primary tells a worker at fork time, through the environment (JSON in DROVER_WORKER). */
export interface WorkerConfig {
  slot: number;
  generation: number;
  app: string;
  heartbeatIntervalMs: number;
  /** How often beats are sent to the primary at the current pace (drover:pace's reportMs). */
  heartbeatReportMs?: number;
  /** The watchdog thread captures the main thread's stack once the loop has been blocked this long. */
  stackCaptureAfterMs: number;
  /** A synchronous stretch of the loop longer than this is a block, attributed to a route (0 = off). */
  blockThresholdMs: number;
  /** Where the watchdog thread writes a captured stack (`stack-<pid>.json`). */
  runtimeDir: string;
  logLevel: string;
  /** Period of unsolicited metrics snapshots (bounds what a SIGKILL loses from the counters). */
  metricsIntervalMs: number;
  /** Record per-request HTTP metrics (off: only runtime metrics and the app's own). */
  requestMetrics: boolean;
  /** Load-shedding thresholds (0 / 1 = off), see options. */
  shed: { loopDelayMs: number; utilization: number; heapBytes: number; rssBytes: number; exempt: string[] };
  maxRequestsPerSocket: number;
  /** http.Server timeouts (ms). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

export const WORKER_CONFIG_ENV = 'DROVER_WORKER';
