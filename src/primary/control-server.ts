import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log';
import type { BlockingRoute } from '../protocol';
import type { Dispatcher } from './dispatcher';
import type { Supervisor } from './supervisor';
import type { WorkerHandle } from './worker-handle';
import type { ExitReason, WorkerState } from './worker-lifecycle';

export const VERSION: string = (require('../../../package.json') as { version: string }).version;

export interface WorkerStatus {
  slot: number;
  id: number;
  pid: number;
  /** The worker's lifecycle state (src/primary/worker-lifecycle.ts). */
  phase: WorkerState;
  generation: number;
  uptimeS: number;
  heartbeatAgeMs: number;
  /** Heartbeats sent since the worker started (the last beat's sequence number). */
  heartbeats: number | null;
  /** How often the worker beats, as its last beat sent said. */
  heartbeatIntervalMs: number | null;
  /** When the next beat sent was due after the last one: the interval, or a second at the idle pace, which sends one beat of ten (ADR 0020). */
  heartbeatReportMs: number | null;
  loopDelayP50Ms: number | null;
  loopDelayP99Ms: number | null;
  loopDelayMaxMs: number | null;
  utilization: number | null;
  rssBytes: number | null;
  heapUsedBytes: number | null;
  inFlight: number | null;
  connections: number | null;
  /** Of `connections`, those upgraded (WebSockets): they hold no request in flight but keep the worker's drain open. */
  upgraded: number | null;
  requests: number | null;
  /** Connections the worker had adopted by its last beat; `dispatched` minus this is what it had not yet. */
  adopted: number | null;
  /** Connections the primary handed to this worker. */
  dispatched: number;
  privatePort: number | null;
  /**
   * Routes whose code blocked this worker's event loop longer than --block-threshold, most
   * blocked seconds first (at most BLOCKS_SHOWN); empty while it has had no block.
   */
  blocks: BlockingRoute[];
}

export interface Status {
  drover: {
    version: string;
    pid: number;
    phase: string;
    ready: boolean;
    generation: number;
    uptimeS: number;
    workersTarget: number;
    workersSource: string;
    workersDetail: string;
    dispatch: string;
    app: string;
    port: number;
    reload: { generation: number; replaced: number } | null;
    exits: Record<ExitReason, number>;
    reloads: { completed: number; aborted: number };
    dispatcher: Dispatcher['stats'] & { queuedNow: number };
    /** The heartbeat pace the workers are asked to keep (src/primary/beat-pace.ts). */
    heartbeat: { pace: string; intervalMs: number; paceChanges: number };
  };
  workers: WorkerStatus[];
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Blocking routes per worker in /status: enough to name the culprit, small enough to read. */
export const BLOCKS_SHOWN = 5;

/** The `n` routes with the most blocked seconds (the worker sends its top list; this bounds and orders it). */
export function topBlockingRoutes(routes: readonly BlockingRoute[], n = BLOCKS_SHOWN): BlockingRoute[] {
  return [...routes].sort((a, b) => b.seconds - a.seconds || b.count - a.count).slice(0, n);
}

function workerStatus(h: WorkerHandle, now: number): WorkerStatus {
  const b = h.beat;
  return {
    slot: h.slot,
    id: h.id,
    pid: h.pid,
    phase: h.state,
    generation: h.generation,
    uptimeS: round((now - h.forkedAt) / 1000),
    heartbeatAgeMs: Math.round(h.beatAge(now)),
    heartbeats: b?.seq ?? null,
    heartbeatIntervalMs: b ? (b.beatMs ?? b.nextMs) : null,
    heartbeatReportMs: b?.nextMs ?? null,
    loopDelayP50Ms: b ? round(b.loop.delayP50Ms, 2) : null,
    loopDelayP99Ms: b ? round(b.loop.delayP99Ms, 2) : null,
    loopDelayMaxMs: b ? round(b.loop.delayMaxMs, 2) : null,
    utilization: b ? round(b.loop.utilization, 3) : null,
    rssBytes: b?.rssBytes ?? null,
    heapUsedBytes: b?.heapUsedBytes ?? null,
    inFlight: b?.inFlight ?? null,
    connections: b?.connections ?? null,
    upgraded: b?.upgraded ?? null,
    requests: b?.requests ?? null,
    adopted: b?.adopted ?? null,
    dispatched: h.dispatched,
    privatePort: h.privatePort ?? null,
    blocks: topBlockingRoutes(h.blocks),
  };
}

/**
 * The primary's own HTTP server, on its own port. It only reads supervisor state (never calls a
 * worker), so probes and status answer even while every worker's event loop is blocked.
 */
export class ControlServer {
  private readonly server: http.Server;
  private readonly startedAt = performance.now();
  appPort = 0;
  /** Requests refused for a missing or wrong token (drover_control_unauthorized_total). */
  unauthorized = 0;

  constructor(
    private readonly sup: Supervisor,
    private readonly dispatcher: Dispatcher,
    private readonly token: string | undefined,
    private readonly log: Logger,
    private readonly scrape: () => Promise<{ contentType: string; body: string }>,
    private readonly metricsAuth = false,
  ) {
    this.server = http.createServer((req, res) => this.handle(req, res));
    // Probes must not be starved by idle connections piling up.
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host }, () => {
        this.server.off('error', reject);
        // Once listening, the only server errors are failed accepts (out of descriptors, when
        // libuv's reserve descriptor is gone too): unheard, they would end the primary.
        this.server.on('error', (err: NodeJS.ErrnoException) => this.log.warn({ code: err.code }, 'accept failed on the control port'));
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
  }

  status(): Status {
    const now = performance.now();
    const s = this.sup;
    return {
      drover: {
        version: VERSION,
        pid: process.pid,
        phase: s.phase,
        ready: s.isReady(now),
        generation: s.generation,
        uptimeS: round((now - this.startedAt) / 1000),
        workersTarget: s.opts.workers,
        workersSource: s.opts.workersSource,
        workersDetail: s.opts.workersDetail,
        dispatch: s.opts.dispatch,
        app: s.opts.app,
        port: this.appPort,
        reload: s.reloads.generation !== undefined ? { generation: s.reloads.generation, replaced: s.reloads.replaced } : null,
        exits: { ...s.exits },
        reloads: { completed: s.reloads.completed, aborted: s.reloads.aborted },
        dispatcher: { ...this.dispatcher.stats, queuedNow: this.dispatcher.queuedNow },
        heartbeat: { pace: this.dispatcher.pace.state, intervalMs: this.dispatcher.pace.intervalMs, paceChanges: this.dispatcher.pace.changes },
      },
      workers: [...s.handles].sort((a, b) => a.slot - b.slot || a.id - b.id).map((h) => workerStatus(h, now)),
    };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${url}`;
    switch (route) {
      case 'GET /livez':
        return json(res, 200, { status: 'alive', phase: this.sup.phase });
      case 'GET /readyz': {
        const st = this.status();
        const ready = st.drover.ready;
        return json(res, ready ? 200 : 503, {
          status: ready ? 'ready' : 'not ready',
          phase: st.drover.phase,
          workers: st.workers.map((w) => ({ slot: w.slot, pid: w.pid, phase: w.phase, heartbeatAgeMs: w.heartbeatAgeMs })),
        });
      }
      case 'GET /status':
        return json(res, 200, this.status());
      case 'GET /metrics':
        if (this.metricsAuth && !this.authorized(req, res)) return;
        return void this.scrape().then(
          (m) => {
            res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' });
            res.end(m.body);
          },
          (err: unknown) => {
            this.log.error({ err }, 'metrics scrape failed');
            json(res, 500, { error: 'metrics scrape failed; see the drover log' });
          },
        );
      case 'POST /reload':
        return this.reload(req, res);
      default:
        return json(res, 404, { error: 'not found', routes: ['GET /livez', 'GET /readyz', 'GET /status', 'GET /metrics', 'POST /reload'] });
    }
  }

  /** Checks the bearer token (constant time); answers 401 and counts the attempt if wrong. */
  private authorized(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m?.[1] ?? '');
    const want = Buffer.from(this.token ?? '');
    if (this.token && m && given.length === want.length && timingSafeEqual(given, want)) return true;
    this.unauthorized++;
    this.log.warn({ remote: req.socket.remoteAddress, route: `${req.method} ${req.url}` }, 'control request with a wrong or missing token');
    json(res, 401, { error: 'wrong or missing bearer token' });
    return false;
  }

  private reload(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!this.token) {
      return json(res, 403, { error: 'reload over HTTP is disabled; start drover with --control-token (or send SIGHUP)' });
    }
    if (!this.authorized(req, res)) return;
    const r = this.sup.requestReload('http');
    json(res, r.accepted ? 202 : 409, r.accepted ? { status: 'reload started', generation: this.sup.generation } : { error: r.reason });
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
