/**
 * Entry point of every drover worker (forked by the primary with cluster.setupPrimary({ exec })).
 * Loads the user's app, serves it on sockets handed over by the primary, beats, and drains on
 * order. It never decides to stop on its own: signals are reported to the primary, which owns
 * the lifecycle (pm2's tree-kill signals workers a moment before the primary).
 */
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ExitCode } from '../errors';
import { createLogger } from '../log';
import {
  PROTOCOL_VERSION,
  WORKER_CONFIG_ENV,
  isPrimaryMessage,
  type WorkerConfig,
  type WorkerToPrimary,
} from '../protocol';
import { socketFromHandle, type TcpHandle } from '../tcp-handle';
import { createAppServer } from './app-server';
import type { Connections } from './connections';
import { Heartbeat } from './heartbeat';
import { loadApp, type AppHooks } from './load-app';
import { WorkerMetrics } from './metrics';
import { createPressureGate } from './pressure-gate';
import { interceptListen } from './stray-listen';
import { startLoopWatch, type LoopWatch } from './watchdog';

const config = JSON.parse(process.env[WORKER_CONFIG_ENV] ?? 'null') as WorkerConfig | null;
if (!config || !process.send) {
  process.stderr.write('drover: the worker entry is started by the drover primary, not directly.\n');
  process.exit(ExitCode.USAGE);
}
const cfg: WorkerConfig = config;
const bindings = { role: 'worker', worker: cfg.slot, gen: cfg.generation };
const log = createLogger(cfg.logLevel, bindings);
// Lets the app tell its workers apart (logs, responses) without knowing drover's internals.
process.env.DROVER_WORKER_SLOT = String(cfg.slot);
process.env.DROVER_WORKER_GENERATION = String(cfg.generation);

function send(msg: WorkerToPrimary, cb?: () => void): void {
  if (!process.connected) return cb?.();
  process.send!(msg, undefined, {}, (err) => {
    // The channel can close between the check and the write (primary exiting): not an error here.
    if (err) log.debug({ err: err.message, type: msg.type }, 'ipc send failed');
    cb?.();
  });
}

function exitAfterFlush(code: number): void {
  // Let queued IPC messages reach the primary before the channel goes away.
  if (process.connected) process.disconnect();
  process.exit(code);
}

let hooks: AppHooks = {};
const metrics = new WorkerMetrics((msg, extra) => log.warn(extra, msg));
let metricsTimer: NodeJS.Timeout | undefined;

/** Sends a snapshot; `id` answers a collect request, 0 is an unsolicited push. */
function pushMetrics(id: number, cb?: () => void): void {
  metrics.snapshot().then(
    (m) => send({ type: 'drover:metrics', id, metrics: m }, cb),
    (err: unknown) => {
      log.error({ err }, 'metrics snapshot failed');
      cb?.();
    },
  );
}
let conns: Connections | undefined;
let watch: LoopWatch | undefined;
let heartbeat: Heartbeat | undefined;
/** The heartbeat interval the primary asked for (drover:pace); the configured one until it does. */
let beatIntervalMs = cfg.heartbeatIntervalMs;

async function runShutdownHook(budgetMs: number): Promise<void> {
  if (!hooks.shutdown) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), budgetMs)));
  try {
    const result = await Promise.race([Promise.resolve(hooks.shutdown()), timeout]);
    if (result === 'timeout') log.error({ budgetMs }, 'app shutdown hook did not finish in time; exiting anyway');
  } catch (err) {
    log.error({ err }, 'app shutdown hook threw; exiting anyway');
  } finally {
    clearTimeout(timer);
  }
}

/** Thread pools the app created through drover's toolkit end with the worker (if any exist). */
async function closeOffloadPools(): Promise<void> {
  const loaded = require.cache[require.resolve('../toolkit/offload')];
  if (!loaded) return;
  await (loaded.exports as typeof import('../toolkit/offload')).closePools().catch((err: unknown) => log.warn({ err }, 'closing thread pools failed'));
}

async function drain(timeoutMs: number, idleGraceMs: number): Promise<void> {
  if (!conns || conns.state === 'draining' || conns.state === 'stopped') return;
  const started = Date.now();
  const { inFlight, upgraded } = conns.counters();
  log.info({ timeoutMs, inFlight, upgraded }, 'draining');
  // The hook runs between HTTP and upgraded connections: after the last request (pools may
  // close), while WebSockets are still open for the app to close with a close frame.
  watch?.stopSampling();
  const forced = await conns.drain(timeoutMs, idleGraceMs, () => runShutdownHook(Math.max(0, timeoutMs - (Date.now() - started))));
  await closeOffloadPools();
  heartbeat?.stop();
  clearTimeout(metricsTimer);
  // The last snapshot is what the primary retires into the totals: send it after the last request.
  await new Promise<void>((resolve) => pushMetrics(0, resolve));
  log.info({ forced, ms: Date.now() - started }, forced ? 'drain deadline hit; connections closed' : 'drained');
  send({ type: 'drover:drained', forced }, () => exitAfterFlush(ExitCode.OK));
}

process.on('message', (msg: unknown, handle: unknown) => {
  if (!isPrimaryMessage(msg)) return;
  switch (msg.type) {
    case 'drover:socket': {
      const conn = handle as TcpHandle | undefined;
      // Ack first: the primary keeps its copy of the connection until this arrives, and
      // re-dispatches it if we die before acking. Acking before reading means no request bytes
      // are lost that way.
      send({ type: 'drover:adopted', id: msg.id });
      if (conn && conns) conns.adopt(socketFromHandle(conn));
      else conn?.close();
      break;
    }
    case 'drover:collect':
      pushMetrics(msg.id);
      break;
    case 'drover:pace':
      beatIntervalMs = msg.intervalMs;
      heartbeat?.setIntervalMs(msg.intervalMs);
      break;
    case 'drover:drain':
      void drain(msg.timeoutMs, msg.idleGraceMs);
      break;
    case 'drover:protocol-reject':
      log.error({ expected: msg.expected, mine: protocolVersion() }, 'primary speaks another protocol version; exiting');
      exitAfterFlush(ExitCode.USAGE);
      break;
  }
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    log.info({ signal }, 'signal received; waiting for the primary to order the drain');
    send({ type: 'drover:signal', signal });
  });
}

// The primary went away without draining us (SIGKILL): finish what is in flight, briefly, then go.
// Node's cluster worker setup registers its own 'disconnect' listener that calls process.exit(0)
// at once, dropping in-flight requests; drover's handler replaces it.
process.removeAllListeners('disconnect');
process.on('disconnect', () => {
  if (conns?.state === 'listening') {
    log.warn('primary disconnected; draining and exiting');
    void drain(1000, 0);
  } else if (conns?.state !== 'draining') {
    process.exit(ExitCode.FAILURE);
  }
});

/**
 * The protocol this worker speaks. DROVER_TEST_PROTOCOL_FILE (test-only) names a file whose
 * number, if the file exists, replaces it: a stand-in for a worker forked from newer files.
 */
function protocolVersion(): number {
  const file = process.env.DROVER_TEST_PROTOCOL_FILE;
  if (file) {
    try {
      return Number(fs.readFileSync(file, 'utf8').trim());
    } catch {
      /* no override */
    }
  }
  return PROTOCOL_VERSION;
}

/** The app could not be loaded or set up: the primary stops instead of respawning it. */
function appFailed(err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  log.fatal({ err: e, app: cfg.app }, 'app failed to load');
  send({ type: 'drover:app-error', message: e.message, stack: e.stack }, () => exitAfterFlush(ExitCode.APP_LOAD_ERROR));
}

async function main(): Promise<void> {
  watch = startLoopWatch(cfg, {
    bindings,
    inFlight: () => conns?.counters().inFlight ?? 0,
    routeOf: (req) => metrics.red.routeOf(req),
    warn: (fields, msg) => log.warn(fields, msg),
    report: (routes) => send({ type: 'drover:blocks', routes }),
  });
  metrics.blocks = watch.blocks;
  send({ type: 'drover:hello', protocol: protocolVersion(), pid: process.pid });

  let loaded;
  let warned = false;
  const restoreListen = interceptListen((what) => {
    if (warned) return;
    warned = true;
    log.warn({ call: what }, 'the app called listen() itself; drover serves it on the app port and ignored that call');
  });
  try {
    loaded = await loadApp(cfg.app);
    hooks = loaded.hooks;
    if (hooks.ready) await hooks.ready();
  } catch (err) {
    restoreListen();
    return appFailed(err);
  }
  restoreListen();
  const app = loaded.app;
  app.set?.('x-powered-by', false);
  metrics.addAppRegistry(cfg.app);

  const gate = await createPressureGate(cfg.shed, (reason) => metrics.shed(reason));
  const { server, conns: c } = createAppServer(cfg, app, gate, watch.blocks);
  try {
    // Before listen(): the app's 'upgrade' listeners (ws, socket.io) must be there for the first socket.
    if (hooks.attach) await hooks.attach(server);
  } catch (err) {
    return appFailed(err);
  }
  conns = c;
  metrics.inFlightNow = () => c.counters().inFlight;
  if (cfg.requestMetrics) c.onDone = (req, res, startedAt) => metrics.red.record(req, res, startedAt);

  // The server listens on a private loopback port (exclusive: not shared through the cluster):
  // node runs header/request timeouts and closeIdleConnections() only for listening servers.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, resolve);
  });
  c.state = 'listening';
  heartbeat = new Heartbeat(beatIntervalMs, () => c.counters(), (m) => send(m), watch.beat);
  heartbeat.start();
  metricsTimer = setTimeout(function push() {
    pushMetrics(0);
    metricsTimer?.refresh();
  }, cfg.metricsIntervalMs);
  metricsTimer.unref();
  const privatePort = (server.address() as AddressInfo).port;
  send({ type: 'drover:listening', privatePort });
  // Which kind of export drover took the app for (ADR 0015): the first thing to check if it answers oddly.
  log.info({ privatePort, appKind: loaded.kind }, 'listening');
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'worker failed to start');
  exitAfterFlush(ExitCode.FAILURE);
});
