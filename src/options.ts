import * as path from 'node:path';
import { detectCpuLimit, type CpuLimit } from './cpus';
import { DroverError, ExitCode } from './errors';

export type DispatchMode = 'least-busy' | 'round-robin';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Everything `drover start` can be told. Each field: flag `--kebab-name`, env `DROVER_SNAKE_NAME`. */
export interface DroverOptions {
  /** Path of the app module (what it may export: src/worker/app-kind.ts). @defaultValue the bundled demo app */
  app: string;
  /** Number of workers. Also read from `WEB_CONCURRENCY`. @defaultValue the cgroup CPU quota rounded up, else `os.availableParallelism()` */
  workers: number;
  /** Where `workers` came from, for the startup log and `/status`. */
  workersSource: 'flag' | 'env' | 'cgroup' | 'cpus';
  /** How the default worker count was derived (or why the flag/env value was used). */
  workersDetail: string;
  /** Root of the cgroup file system read for the CPU quota. @defaultValue '/sys/fs/cgroup' */
  cgroupRoot: string;
  /** App port, served by the primary's dispatcher. Also read from `PORT`. @defaultValue 3000 */
  port: number;
  /** App bind address. @defaultValue '0.0.0.0' */
  host: string;
  /** Control plane port (/livez /readyz /status /reload). @defaultValue 3030 */
  controlPort: number;
  /** Control plane bind address; loopback unless said otherwise. @defaultValue '127.0.0.1' */
  controlHost: string;
  /** Bearer token that enables mutating control actions (POST /reload). Unset = disabled. @defaultValue undefined */
  controlToken: string | undefined;
  /** Require the control token on GET /metrics too (Prometheus then needs `authorization` in its scrape config). Probes stay open. @defaultValue 'off' */
  metricsAuth: 'on' | 'off';
  /**
   * How the primary hands connections to workers: `least-busy` (fresh heartbeat, fewest in flight)
   * or `round-robin` (Node's own policy: ack-gated, longest-free first; ADR 0012). @defaultValue 'least-busy'
   */
  dispatch: DispatchMode;
  /** A worker whose last heartbeat is older than this gets no new connection (least-busy). @defaultValue 60 ms */
  dispatchFreshnessMs: number;
  /** How often workers report to the primary while it dispatches new connections (least-busy). Must be well under the dispatch freshness. @defaultValue 20 ms */
  heartbeatIntervalMs: number;
  /** How often workers report when no new connection came for a second, or with round-robin dispatch (each beat costs two wake-ups; ADR 0010). @defaultValue 100 ms */
  heartbeatIdleIntervalMs: number;
  /** A listening worker silent this long is stalled: replaced, stack captured, killed. @defaultValue 10 s */
  workerTimeoutMs: number;
  /**
   * A synchronous stretch of a worker's event loop longer than this is a *block*: counted per
   * route in `drover_event_loop_blocks_total`, with a stack per route per minute (ADR 0018); 0 = off.
   * @defaultValue 100 ms
   */
  blockThresholdMs: number;
  /** A worker that has not listened after this long is killed as a failed boot. @defaultValue 30 s */
  bootTimeoutMs: number;
  /** Time between SIGTERM and SIGKILL for a worker being killed (stalled, boot timeout, drain overrun). @defaultValue 2 s */
  killGraceMs: number;
  /** Longest a worker may take to finish in-flight requests when drained. @defaultValue 30 s */
  drainTimeoutMs: number;
  /**
   * During drain, keep-alive sockets are closed only after idling this long; until then a client
   * reusing one gets its answer with `Connection: close`. `undefined` = the keep-alive timeout, which
   * the workers advertise (`Keep-Alive: timeout=5`), so clients that honour it leave first; shorter
   * drains faster but races clients that send as the socket closes (ADR 0021).
   * @defaultValue the keep-alive timeout (5 s)
   */
  drainIdleGraceMs: number | undefined;
  /**
   * Old workers that may still be draining when a rolling reload's next step starts: the reload
   * then takes about one drain per this many + 1 workers instead of one per worker, and adds at
   * most this many + 1 processes to `workers` while it runs (ADR 0022); 0 = each step waits until
   * the previous old worker has left.
   * @defaultValue 1
   */
  reloadDrains: number;
  /** After SIGTERM, keep serving this long with /readyz at 503 before draining (Kubernetes endpoint removal). @defaultValue 0 */
  shutdownDelayMs: number;
  /** First respawn delay after a crash (the very first respawn of a slot is immediate); doubles per consecutive crash. @defaultValue 250 ms */
  restartDelayMs: number;
  /** Cap of the exponential respawn delay. @defaultValue 15 s */
  restartDelayMaxMs: number;
  /** A worker that listened this long resets its slot's crash count. @defaultValue 10 s */
  restartResetMs: number;
  /** Consecutive workers dying before they listen, after which drover stops with exit code 4. @defaultValue 5 */
  maxBootFailures: number;
  /** Workers push a metrics snapshot this often; bounds the counts a SIGKILLed worker takes with it. @defaultValue 1 s */
  metricsIntervalMs: number;
  /** A scrape of /metrics waits at most this long for fresh worker snapshots, then uses the last ones. @defaultValue 500 ms */
  metricsTimeoutMs: number;
  /** Per-request HTTP metrics (http_requests_total, durations, sizes) in the workers. @defaultValue 'on' */
  requestMetrics: 'on' | 'off';
  /** Shed (503 + Retry-After) when the worker's mean event-loop delay over a sample exceeds this; 0 = off. @defaultValue 500 ms */
  shedLoopDelayMs: number;
  /** Shed when event-loop utilization over a sample exceeds this (0..1); 1 = off. @defaultValue 1 */
  shedUtilization: number;
  /** Shed when the worker's V8 heap used exceeds this many MiB; 0 = off. @defaultValue 0 */
  shedHeapMb: number;
  /** Shed when the worker's RSS exceeds this many MiB; 0 = off. @defaultValue 0 */
  shedRssMb: number;
  /** Path prefixes never shed (the app's own health routes). @defaultValue [] */
  shedExempt: string[];
  /** Requests served on one keep-alive connection before it is closed (clients then reconnect and may land elsewhere); 0 = no cap. @defaultValue 0 */
  maxRequestsPerSocket: number;
  /** Recycle a worker (replacement first, then drain) whose RSS exceeds this many MiB; 0 = off. @defaultValue 0 */
  maxMemoryMb: number;
  /** Recycle a worker after this many requests; 0 = off. @defaultValue 0 */
  maxRequests: number;
  /** Each worker's request limit is --max-requests plus a random 0..jitter, so workers started together do not recycle together. @defaultValue 0 */
  maxRequestsJitter: number;
  /** Time a client has to send complete request headers (slowloris defence). @defaultValue 10 s */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request, body included. @defaultValue 60 s */
  requestTimeoutMs: number;
  /** Idle time after which a keep-alive connection is closed. @defaultValue 5 s */
  keepAliveTimeoutMs: number;
  /** Per-worker V8 old-space limit in MiB (`--max-old-space-size`); unset = Node's default. @defaultValue undefined */
  maxHeapMb: number | undefined;
  /** Run workers with `--enable-source-maps`, so error stacks in logs point at TypeScript lines. @defaultValue 'on' */
  sourceMaps: 'on' | 'off';
  /** pino log level for primary and workers. @defaultValue 'info' */
  logLevel: LogLevel;
}

const DEMO_APP = path.join(__dirname, 'demo', 'app.js');
/** The shortest --block-threshold other than 0 (off). */
export const MIN_BLOCK_THRESHOLD_MS = 20;

export const defaults: Omit<DroverOptions, 'workers' | 'workersSource' | 'workersDetail'> = {
  app: DEMO_APP,
  cgroupRoot: '/sys/fs/cgroup',
  port: 3000,
  host: '0.0.0.0',
  controlPort: 3030,
  controlHost: '127.0.0.1',
  controlToken: undefined,
  metricsAuth: 'off',
  dispatch: 'least-busy',
  dispatchFreshnessMs: 60,
  heartbeatIntervalMs: 20,
  heartbeatIdleIntervalMs: 100,
  workerTimeoutMs: 10_000,
  blockThresholdMs: 100,
  bootTimeoutMs: 30_000,
  killGraceMs: 2_000,
  drainTimeoutMs: 30_000,
  drainIdleGraceMs: undefined,
  reloadDrains: 1,
  shutdownDelayMs: 0,
  restartDelayMs: 250,
  restartDelayMaxMs: 15_000,
  restartResetMs: 10_000,
  maxBootFailures: 5,
  metricsIntervalMs: 1_000,
  metricsTimeoutMs: 500,
  requestMetrics: 'on',
  maxHeapMb: undefined,
  maxMemoryMb: 0,
  maxRequests: 0,
  maxRequestsJitter: 0,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  shedLoopDelayMs: 500,
  shedUtilization: 1,
  shedHeapMb: 0,
  shedRssMb: 0,
  shedExempt: [],
  maxRequestsPerSocket: 0,
  sourceMaps: 'on',
  logLevel: 'info',
};

type Kind = 'int' | 'port' | 'duration' | 'ratio' | 'list' | 'string' | 'path' | { oneOf: readonly string[] };
interface Spec {
  key: keyof DroverOptions;
  flag: string;
  kind: Kind;
  /** Extra environment names read after DROVER_*, e.g. PORT, WEB_CONCURRENCY. */
  env?: string[];
  min?: number;
  help: string;
}

/** One table drives flags, env names, parsing and help, so they cannot drift apart. */
export const optionSpecs: readonly Spec[] = [
  { key: 'workers', flag: 'workers', kind: 'int', env: ['WEB_CONCURRENCY'], min: 1, help: 'number of workers (default: CPUs available)' },
  { key: 'cgroupRoot', flag: 'cgroup-root', kind: 'path', help: "cgroup file system read for the CPU quota (default '/sys/fs/cgroup')" },
  { key: 'port', flag: 'port', kind: 'port', env: ['PORT'], help: 'app port (default 3000; 0 = any free port)' },
  { key: 'host', flag: 'host', kind: 'string', help: "app bind address (default '0.0.0.0')" },
  { key: 'controlPort', flag: 'control-port', kind: 'port', help: 'control plane port: /livez /readyz /status (default 3030)' },
  { key: 'controlHost', flag: 'control-host', kind: 'string', help: "control plane bind address (default '127.0.0.1')" },
  { key: 'controlToken', flag: 'control-token', kind: 'string', help: 'bearer token enabling POST /reload (default: disabled)' },
  { key: 'metricsAuth', flag: 'metrics-auth', kind: { oneOf: ['on', 'off'] }, help: 'require the control token on GET /metrics: on | off (default off)' },
  { key: 'dispatch', flag: 'dispatch', kind: { oneOf: ['least-busy', 'round-robin'] }, help: 'connection dispatch: least-busy | round-robin (Node\'s policy) (default least-busy)' },
  { key: 'dispatchFreshnessMs', flag: 'dispatch-freshness', kind: 'duration', min: 1, help: 'skip workers whose heartbeat is older (default 60ms)' },
  { key: 'heartbeatIntervalMs', flag: 'heartbeat-interval', kind: 'duration', min: 5, help: 'worker heartbeat interval while dispatching (default 20ms)' },
  { key: 'heartbeatIdleIntervalMs', flag: 'heartbeat-idle-interval', kind: 'duration', min: 5, help: 'heartbeat interval after 1s without new connections (default 100ms)' },
  { key: 'workerTimeoutMs', flag: 'worker-timeout', kind: 'duration', min: 200, help: 'silent this long = stalled, replaced (default 10s)' },
  { key: 'blockThresholdMs', flag: 'block-threshold', kind: 'duration', min: 0, help: 'a loop stretch longer than this is a block, counted per route; 0ms = off (default 100ms)' },
  { key: 'bootTimeoutMs', flag: 'boot-timeout', kind: 'duration', min: 100, help: 'max time for a worker to listen (default 30s)' },
  { key: 'killGraceMs', flag: 'kill-grace', kind: 'duration', min: 0, help: 'SIGTERM to SIGKILL grace (default 2s)' },
  { key: 'drainTimeoutMs', flag: 'drain-timeout', kind: 'duration', min: 0, help: 'max drain time per worker (default 30s)' },
  { key: 'drainIdleGraceMs', flag: 'drain-idle-grace', kind: 'duration', min: 0, help: 'in drain, close keep-alive sockets only after they idled this long (default: the keep-alive timeout)' },
  { key: 'reloadDrains', flag: 'reload-drains', kind: 'int', min: 0, help: 'old workers still draining when a reload starts its next step; 0 = wait for each (default 1)' },
  { key: 'shutdownDelayMs', flag: 'shutdown-delay', kind: 'duration', min: 0, help: 'serve this long after SIGTERM with /readyz 503 (default 0)' },
  { key: 'restartDelayMs', flag: 'restart-delay', kind: 'duration', min: 0, help: 'first backoff delay after a crash (default 250ms)' },
  { key: 'restartDelayMaxMs', flag: 'restart-delay-max', kind: 'duration', min: 0, help: 'backoff cap (default 15s)' },
  { key: 'restartResetMs', flag: 'restart-reset', kind: 'duration', min: 0, help: 'uptime that resets the crash count (default 10s)' },
  { key: 'maxBootFailures', flag: 'max-boot-failures', kind: 'int', min: 1, help: 'consecutive boot failures before giving up (default 5)' },
  { key: 'metricsIntervalMs', flag: 'metrics-interval', kind: 'duration', min: 100, help: 'worker metrics snapshot period (default 1s)' },
  { key: 'metricsTimeoutMs', flag: 'metrics-timeout', kind: 'duration', min: 10, help: 'longest wait of /metrics for fresh worker snapshots (default 500ms)' },
  { key: 'requestMetrics', flag: 'request-metrics', kind: { oneOf: ['on', 'off'] }, help: 'per-request HTTP metrics in workers: on | off (default on)' },
  { key: 'shedLoopDelayMs', flag: 'shed-loop-delay', kind: 'duration', min: 0, help: 'shed when mean loop delay exceeds this; 0ms = off (default 500ms)' },
  { key: 'shedUtilization', flag: 'shed-utilization', kind: 'ratio', help: 'shed when loop utilization exceeds this; 1 = off (default 1)' },
  { key: 'shedHeapMb', flag: 'shed-heap', kind: 'int', min: 0, help: 'shed when heap used exceeds this many MiB; 0 = off (default 0)' },
  { key: 'shedRssMb', flag: 'shed-rss', kind: 'int', min: 0, help: 'shed when RSS exceeds this many MiB; 0 = off (default 0)' },
  { key: 'shedExempt', flag: 'shed-exempt', kind: 'list', help: 'comma-separated path prefixes never shed (default none)' },
  { key: 'maxRequestsPerSocket', flag: 'max-requests-per-socket', kind: 'int', min: 0, help: 'requests per keep-alive connection, then close; 0 = no cap (default 0)' },
  { key: 'maxMemoryMb', flag: 'max-memory', kind: 'int', min: 0, help: 'recycle a worker whose RSS exceeds this many MiB; 0 = off (default 0)' },
  { key: 'maxRequests', flag: 'max-requests', kind: 'int', min: 0, help: 'recycle a worker after this many requests; 0 = off (default 0)' },
  { key: 'maxRequestsJitter', flag: 'max-requests-jitter', kind: 'int', min: 0, help: 'random 0..N added to each worker\'s --max-requests (default 0)' },
  { key: 'headersTimeoutMs', flag: 'headers-timeout', kind: 'duration', min: 100, help: 'time to send complete request headers (default 10s)' },
  { key: 'requestTimeoutMs', flag: 'request-timeout', kind: 'duration', min: 100, help: 'time to send a whole request (default 60s)' },
  { key: 'keepAliveTimeoutMs', flag: 'keep-alive-timeout', kind: 'duration', min: 0, help: 'idle keep-alive connection timeout (default 5s)' },
  { key: 'maxHeapMb', flag: 'max-heap', kind: 'int', min: 16, help: 'per-worker V8 heap limit in MiB (default: Node\'s)' },
  { key: 'sourceMaps', flag: 'source-maps', kind: { oneOf: ['on', 'off'] }, help: 'workers run with --enable-source-maps: on | off (default on)' },
  { key: 'logLevel', flag: 'log-level', kind: { oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }, help: "log level (default 'info')" },
];

export function envName(spec: Spec): string {
  return 'DROVER_' + spec.flag.toUpperCase().replace(/-/g, '_');
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * Durations need a unit: a bare `30` is ambiguous (gunicorn reads seconds, most Node tools
 * milliseconds), and guessing wrong by 1000x turns a watchdog into a kill loop.
 */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

function parseValue(spec: Spec, raw: string, from: string): string | number {
  const fail = (expected: string): never => {
    throw new DroverError('DROVER_ERR_OPTION', `${from}: expected ${expected}, got '${raw}'.`, ExitCode.USAGE);
  };
  const kind = spec.kind;
  let value: string | number;
  if (kind === 'int' || kind === 'port') {
    if (!/^\d+$/.test(raw.trim())) fail(kind === 'port' ? 'a port number 0-65535' : 'a whole number');
    value = Number(raw);
    if (kind === 'port' && value > 65535) fail('a port number 0-65535');
  } else if (kind === 'ratio') {
    if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(raw.trim())) fail('a number from 0 to 1, like 0.95');
    value = Number(raw);
  } else if (kind === 'list') {
    return raw.split(',').map((x) => x.trim()).filter(Boolean) as unknown as string;
  } else if (kind === 'duration') {
    const ms = parseDuration(raw);
    if (ms === undefined) fail('a duration with a unit, like 500ms, 10s or 2m');
    value = ms!;
  } else if (typeof kind === 'object') {
    if (!kind.oneOf.includes(raw)) fail(`one of ${kind.oneOf.join(', ')}`);
    value = raw;
  } else {
    if (raw === '') fail('a non-empty value');
    value = kind === 'path' ? path.resolve(raw) : raw;
  }
  if (typeof value === 'number' && spec.min !== undefined && value < spec.min) {
    fail(kind === 'duration' ? `at least ${spec.min}ms` : `at least ${spec.min}`);
  }
  return value;
}

/**
 * Merge defaults < environment < flags, validate once, and say exactly which flag or variable
 * is wrong. `flags` holds the raw strings of parsed `--flag value` pairs.
 */
export function resolveOptions(
  flags: Record<string, string | undefined>,
  env: NodeJS.ProcessEnv,
  appArg?: string,
  cpuLimit: (cgroupRoot: string) => CpuLimit = (root) => detectCpuLimit(root),
): DroverOptions {
  const out: Record<string, unknown> = { ...defaults };
  let workersSource: DroverOptions['workersSource'] = 'cpus';
  for (const spec of optionSpecs) {
    const flagRaw = flags[spec.flag];
    let raw: string | undefined;
    let from = '';
    if (flagRaw !== undefined) {
      raw = flagRaw;
      from = `--${spec.flag}`;
    } else {
      for (const name of [envName(spec), ...(spec.env ?? [])]) {
        if (env[name] !== undefined && env[name] !== '') {
          raw = env[name];
          from = `environment variable ${name}`;
          break;
        }
      }
    }
    if (raw === undefined) continue;
    out[spec.key] = parseValue(spec, raw, from);
    if (spec.key === 'workers') workersSource = flagRaw !== undefined ? 'flag' : 'env';
  }
  if (out.workers === undefined) {
    const limit = cpuLimit(out.cgroupRoot as string);
    out.workers = limit.count;
    workersSource = limit.source;
    out.workersDetail = limit.detail;
  } else {
    out.workersDetail = workersSource === 'flag' ? '--workers' : 'environment';
  }
  out.workersSource = workersSource;
  out.app = appArg ? path.resolve(appArg) : (env.DROVER_APP ? path.resolve(env.DROVER_APP) : DEMO_APP);
  const o = out as unknown as DroverOptions;
  if (o.heartbeatIntervalMs * 2 > o.dispatchFreshnessMs) {
    throw new DroverError(
      'DROVER_ERR_OPTION',
      `--heartbeat-interval (${o.heartbeatIntervalMs}ms) must be at most half of --dispatch-freshness (${o.dispatchFreshnessMs}ms), or every worker looks stale between beats.`,
      ExitCode.USAGE,
    );
  }
  if (o.headersTimeoutMs > o.requestTimeoutMs) {
    throw new DroverError('DROVER_ERR_OPTION', `--headers-timeout (${o.headersTimeoutMs}ms) must not exceed --request-timeout (${o.requestTimeoutMs}ms).`, ExitCode.USAGE);
  }
  if (o.metricsAuth === 'on' && !o.controlToken) {
    throw new DroverError('DROVER_ERR_OPTION', '--metrics-auth on needs --control-token (the token Prometheus must send).', ExitCode.USAGE);
  }
  if (o.workerTimeoutMs <= o.dispatchFreshnessMs) {
    throw new DroverError(
      'DROVER_ERR_OPTION',
      `--worker-timeout (${o.workerTimeoutMs}ms) must be longer than --dispatch-freshness (${o.dispatchFreshnessMs}ms).`,
      ExitCode.USAGE,
    );
  }
  if (o.heartbeatIdleIntervalMs < o.heartbeatIntervalMs) {
    throw new DroverError(
      'DROVER_ERR_OPTION',
      `--heartbeat-idle-interval (${o.heartbeatIdleIntervalMs}ms) must not be shorter than --heartbeat-interval (${o.heartbeatIntervalMs}ms).`,
      ExitCode.USAGE,
    );
  }
  // Block detection samples a loop overdue by max(10 ms, threshold / 5) past a tick of threshold / 4:
  // below 20 ms that is timer jitter, not a block (ADR 0018).
  if (o.blockThresholdMs > 0 && o.blockThresholdMs < MIN_BLOCK_THRESHOLD_MS) {
    throw new DroverError(
      'DROVER_ERR_OPTION',
      `--block-threshold (${o.blockThresholdMs}ms) must be 0ms (off) or at least ${MIN_BLOCK_THRESHOLD_MS}ms.`,
      ExitCode.USAGE,
    );
  }
  // The worker's watchdog thread captures a stack after half the worker timeout without a beat:
  // at least two idle intervals, or it would capture healthy idle workers between their beats.
  if (o.workerTimeoutMs < 4 * o.heartbeatIdleIntervalMs) {
    throw new DroverError(
      'DROVER_ERR_OPTION',
      `--worker-timeout (${o.workerTimeoutMs}ms) must be at least 4 times --heartbeat-idle-interval (${o.heartbeatIdleIntervalMs}ms).`,
      ExitCode.USAGE,
    );
  }
  return o;
}
