import * as fs from 'node:fs';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ExitCode } from '../errors';
import { createLogger, type Logger } from '../log';
import { PROTOCOL_VERSION, type PrimaryToWorker, type WorkerConfig, type WorkerToPrimary } from '../protocol';
import { socketFromHandle, type TcpHandle } from '../tcp-handle';
import { createAppServer } from './app-server';
import type { WorkerChannel } from './channel';
import type { Connections, WorkerState } from './connections';
import { Heartbeat } from './heartbeat';
import { loadApp, type AppHooks, type LoadedApp } from './load-app';
import { WorkerMetrics } from './metrics';
import { createPressureGate } from './pressure-gate';
import { interceptListen } from './stray-listen';
import { startLoopWatch, type LoopWatch } from './watchdog';

/** An idle worker still pushes a metrics snapshot every this many intervals (see push below). */
const IDLE_PUSH_EVERY = 10;

/**
 * Runs a drover worker in this process: watches its loop, loads the user's app (`app`: the path
 * of its module, or an app already loaded), serves it, beats, pushes metrics, and drains on the
 * primary's order. A listening worker never decides to stop on its own: signals are reported to
 * the primary, which owns the lifecycle (pm2's tree-kill signals workers a moment before the
 * primary). One not listening yet exits on SIGTERM (onSignal says why).
 *
 * One module for both hosts (channel.ts): drover's worker entry (main.ts) and the peers bench's
 * control row, which thereby measures this code and not a copy of it. Resolves once the worker
 * listens, or once it has begun to exit because it could not (the failure is logged and reported).
 */
export function startWorker(cfg: WorkerConfig, app: string | LoadedApp, channel: WorkerChannel): Promise<void> {
  const worker = new DroverWorker(cfg, channel);
  return worker.boot(app).catch((err: unknown) => {
    worker.log.fatal({ err }, 'worker failed to start');
    channel.exit(ExitCode.FAILURE);
  });
}

class DroverWorker {
  readonly log: Logger;
  private readonly bindings: Record<string, unknown>;
  private readonly metrics: WorkerMetrics;
  private hooks: AppHooks = {};
  /** Set when the server exists: its state is the worker's from then on ('booting' until then). */
  private conns: Connections | undefined;
  private watch: LoopWatch | undefined;
  private heartbeat: Heartbeat | undefined;
  private metricsTimer: NodeJS.Timeout | undefined;
  /** The heartbeat interval the primary asked for (drover:pace); the configured one until it does. */
  private beatIntervalMs: number;
  /** How often beats are sent at that pace (drover:pace); undefined: every beat. */
  private beatReportMs: number | undefined;

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly channel: WorkerChannel,
  ) {
    this.bindings = { role: 'worker', worker: cfg.slot, gen: cfg.generation };
    this.log = createLogger(cfg.logLevel, this.bindings);
    this.metrics = new WorkerMetrics((msg, extra) => this.log.warn(extra, msg));
    this.beatIntervalMs = cfg.heartbeatIntervalMs;
    this.beatReportMs = cfg.heartbeatReportMs;
    // Lets the app tell its workers apart (logs, responses) without knowing drover's internals.
    process.env.DROVER_WORKER_SLOT = String(cfg.slot);
    process.env.DROVER_WORKER_GENERATION = String(cfg.generation);
    // Before anything is sent: the primary's answers (pace, protocol-reject) may come at once.
    channel.onMessage((msg, handle) => this.onMessage(msg, handle));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => this.onSignal(signal));
    channel.onDisconnect(() => this.onDisconnect());
  }

  get state(): WorkerState {
    return this.conns?.state ?? 'booting';
  }

  private send(msg: WorkerToPrimary, cb?: () => void): void {
    this.channel.send(msg, (err) => {
      // A send after the primary closed its end (primary exiting) is not an error here.
      if (err) this.log.debug({ err: err.message, type: msg.type }, 'ipc send failed');
      cb?.();
    });
  }

  /** Sends a snapshot; `id` answers a collect request, 0 is an unsolicited push. */
  private pushMetrics(id: number, cb?: () => void): void {
    this.metrics.snapshot().then(
      (m) => this.send({ type: 'drover:metrics', id, metrics: m }, cb),
      (err: unknown) => {
        this.log.error({ err }, 'metrics snapshot failed');
        cb?.();
      },
    );
  }

  private onMessage(msg: PrimaryToWorker, handle: unknown): void {
    switch (msg.type) {
      case 'drover:socket': {
        const conn = handle as TcpHandle | undefined;
        // Ack first: the primary keeps its copy of the connection until this arrives, and
        // re-dispatches it if we die before acking. Acking before reading means no request bytes
        // are lost that way.
        // With it, how busy this worker is right now: dispatch's load figure (worker-handle.ts).
        this.send({ type: 'drover:adopted', id: msg.id, inFlight: this.conns?.inFlight ?? 0 });
        if (conn && this.conns) this.conns.adopt(socketFromHandle(conn));
        else conn?.close();
        break;
      }
      case 'drover:collect':
        this.pushMetrics(msg.id);
        break;
      case 'drover:pace':
        this.beatIntervalMs = msg.intervalMs;
        this.beatReportMs = msg.reportMs;
        this.heartbeat?.setPace(msg.intervalMs, msg.reportMs);
        break;
      case 'drover:drain':
        void this.drain(msg.timeoutMs, msg.idleGraceMs);
        break;
      case 'drover:protocol-reject':
        this.log.error({ expected: msg.expected, mine: protocolVersion() }, 'primary speaks another protocol version; exiting');
        this.channel.exit(ExitCode.USAGE);
        break;
    }
  }

  private onSignal(signal: 'SIGTERM' | 'SIGINT'): void {
    if (signal === 'SIGTERM' && this.state === 'booting') {
      // Only a listening worker has requests to drain, and the primary owns its lifecycle: a
      // SIGTERM before then is the primary killing it (boot timeout, protocol mismatch, shutdown
      // during boot), and no order would follow a report; the kill would wait out --kill-grace.
      // So die of the signal, as a process without a handler does: the primary sees signal SIGTERM.
      // SIGINT is not the primary's (a terminal's Ctrl-C, pm2's tree-kill): it is reported below,
      // and the primary, signalled too, stops booting workers itself.
      this.log.info({ signal }, 'signal received before listening; exiting');
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    this.log.info({ signal }, 'signal received; waiting for the primary to order the drain');
    this.send({ type: 'drover:signal', signal });
  }

  /** The primary went away without draining us (SIGKILL): finish what is in flight, briefly, then go. */
  private onDisconnect(): void {
    if (this.state === 'listening') {
      this.log.warn('primary disconnected; draining and exiting');
      void this.drain(1000, 0);
    } else if (this.state !== 'draining') {
      process.exit(ExitCode.FAILURE);
    }
  }

  private async runShutdownHook(budgetMs: number): Promise<void> {
    const shutdown = this.hooks.shutdown;
    if (!shutdown) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), budgetMs)));
    try {
      const result = await Promise.race([Promise.resolve(shutdown()), timeout]);
      if (result === 'timeout') this.log.error({ budgetMs }, 'app shutdown hook did not finish in time; exiting anyway');
    } catch (err) {
      this.log.error({ err }, 'app shutdown hook threw; exiting anyway');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Thread pools the app created through drover's toolkit end with the worker (if any exist). */
  private async closeOffloadPools(): Promise<void> {
    const loaded = require.cache[require.resolve('../toolkit/offload')];
    if (!loaded) return;
    await (loaded.exports as typeof import('../toolkit/offload')).closePools().catch((err: unknown) => this.log.warn({ err }, 'closing thread pools failed'));
  }

  private async drain(timeoutMs: number, idleGraceMs: number): Promise<void> {
    const conns = this.conns;
    if (!conns || conns.state === 'draining' || conns.state === 'stopped') return;
    const started = Date.now();
    const { inFlight, upgraded } = conns.counters();
    this.log.info({ timeoutMs, inFlight, upgraded }, 'draining');
    this.watch?.stopSampling();
    // The hook runs between HTTP and upgraded connections: after the last request (pools may
    // close), while WebSockets are still open for the app to close with a close frame.
    const forced = await conns.drain(timeoutMs, idleGraceMs, () => this.runShutdownHook(Math.max(0, timeoutMs - (Date.now() - started))));
    await this.closeOffloadPools();
    this.heartbeat?.stop();
    clearTimeout(this.metricsTimer);
    // The last snapshot is what the primary retires into the totals: send it after the last request.
    await new Promise<void>((resolve) => this.pushMetrics(0, resolve));
    this.log.info({ forced, ms: Date.now() - started }, forced ? 'drain deadline hit; connections closed' : 'drained');
    this.send({ type: 'drover:drained', forced }, () => this.channel.exit(ExitCode.OK));
  }

  /** The app could not be loaded or set up: the primary stops instead of respawning it. */
  private appFailed(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.log.fatal({ err: e, app: this.cfg.app }, 'app failed to load');
    this.send({ type: 'drover:app-error', message: e.message, stack: e.stack }, () => this.channel.exit(ExitCode.APP_LOAD_ERROR));
  }

  /** Loads the app module with the app's own listen() calls neutralised (stray-listen.ts). */
  private async load(file: string): Promise<LoadedApp> {
    let warned = false;
    const restoreListen = interceptListen((what) => {
      if (warned) return;
      warned = true;
      this.log.warn({ call: what }, 'the app called listen() itself; drover serves it on the app port and ignored that call');
    });
    try {
      const loaded = await loadApp(file);
      if (loaded.hooks.ready) await loaded.hooks.ready();
      return loaded;
    } finally {
      restoreListen();
    }
  }

  async boot(appOrFile: string | LoadedApp): Promise<void> {
    const { cfg, metrics } = this;
    // First thing, before the app loads: the app's own top-level code can block too.
    const watch = startLoopWatch(cfg, {
      bindings: this.bindings,
      inFlight: () => this.conns?.inFlight ?? 0,
      routeOf: (req) => metrics.red.routeOf(req),
      warn: (fields, msg) => this.log.warn(fields, msg),
      report: (routes) => this.send({ type: 'drover:blocks', routes }),
    });
    this.watch = watch;
    metrics.blocks = watch.blocks;
    this.send({ type: 'drover:hello', protocol: protocolVersion(), pid: process.pid });

    let loaded: LoadedApp;
    try {
      if (typeof appOrFile === 'string') {
        loaded = await this.load(appOrFile);
        metrics.addAppRegistry(appOrFile);
      } else {
        loaded = appOrFile;
        if (loaded.hooks.ready) await loaded.hooks.ready();
      }
    } catch (err) {
      return this.appFailed(err);
    }
    this.hooks = loaded.hooks;
    const app = loaded.app;
    app.set?.('x-powered-by', false);

    const gate = await createPressureGate(cfg.shed, (reason) => metrics.shed(reason));
    const { server, conns } = createAppServer(cfg, app, gate, watch.blocks);
    try {
      // Before listen(): the app's 'upgrade' listeners (ws, socket.io) must be there for the first socket.
      if (this.hooks.attach) await this.hooks.attach(server);
    } catch (err) {
      return this.appFailed(err);
    }
    this.conns = conns;
    metrics.inFlightNow = () => conns.inFlight;
    if (gate) metrics.sensorRunningNow = () => gate.running;
    if (cfg.requestMetrics) conns.onDone = (req, res, startedAt) => metrics.red.record(req, res, startedAt);

    await listen(server, this.channel);
    conns.state = 'listening';
    watch.blocks?.startCounting();
    const onBeat = !gate
      ? watch.beat
      : (nextMs: number, lateMs: number): void => {
          watch.beat(nextMs);
          gate.loopLate(lateMs);
        };
    this.heartbeat = new Heartbeat(this.beatIntervalMs, this.beatReportMs, () => conns.counters(), (m) => this.send(m), onBeat);
    this.heartbeat.start();
    // A push whose counters would equal the last one's is skipped, up to IDLE_PUSH_EVERY in a row:
    // an idle worker's snapshots woke it and the primary every second for nothing (issue 19).
    // Scrapes still ask for a fresh snapshot, and a SIGKILLed idle worker loses at most that
    // many intervals of its runtime counters (CPU seconds, GC), never a request.
    let pushedAt = -1;
    let skipped = 0;
    const push = (): void => {
      const c = conns.counters();
      const changes = c.requests + c.inFlight + (watch.blocks?.recorded ?? 0);
      if (changes === pushedAt && ++skipped < IDLE_PUSH_EVERY) return void this.metricsTimer?.refresh();
      pushedAt = changes;
      skipped = 0;
      this.pushMetrics(0);
      this.metricsTimer?.refresh();
    };
    this.metricsTimer = setTimeout(push, cfg.metricsIntervalMs);
    this.metricsTimer.unref();
    const privatePort = (server.address() as AddressInfo).port;
    this.send({ type: 'drover:listening', privatePort });
    // Which kind of export drover took the app for (ADR 0015): the first thing to check if it answers oddly.
    this.log.info({ privatePort, appKind: loaded.kind }, 'listening');
  }
}

function listen(server: http.Server, channel: WorkerChannel): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(channel.listen, resolve);
  });
}

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
