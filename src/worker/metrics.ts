import type * as http from 'node:http';
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import * as promClient from 'prom-client';
import type { MetricJson } from '../protocol';

/** Request duration buckets, 1 ms to 30 s: small requests and S0/S3-sized ones both resolve. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Size buckets, 64 B to 64 MiB (S3 bodies are 25 MB). */
export const SIZE_BUCKETS = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

/** Label value for requests no route matched: one series whatever path clients send. */
export const UNMATCHED = '(unmatched)';
/** Label value once MAX_ROUTES distinct routes were seen (a guard against dynamic route paths). */
export const OTHER_ROUTE = '(other)';
const MAX_ROUTES = 500;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/**
 * prom-client's default metrics name three gauges with a counter's suffix, and `promtool check
 * metrics` rejects them. drover exposes them without the suffix (docs/metrics.md).
 */
const RENAMES: Record<string, string> = {
  nodejs_active_handles_total: 'nodejs_active_handles',
  nodejs_active_requests_total: 'nodejs_active_requests',
  nodejs_active_resources_total: 'nodejs_active_resources',
};

interface Children {
  requests: promClient.Counter.Internal;
  duration: promClient.Histogram.Internal<string>;
  requestSize: promClient.Histogram.Internal<string>;
  responseSize: promClient.Histogram.Internal<string>;
}

const kBytes = Symbol('drover.bytesAtLastResponse');
type CountedSocket = Socket & { [kBytes]?: { read: number; written: number } };

/**
 * RED metrics of one worker, plus Node's default metrics, in a registry of drover's own. The
 * user's metrics live in prom-client's default registry (or the app's own prom-client copy) and
 * are merged into each snapshot, so an app registers metrics the usual way and they aggregate.
 */
export class WorkerMetrics {
  readonly registry = new promClient.Registry();
  private readonly routes = new Set<string>();
  private readonly userRegistries: promClient.Registry[] = [promClient.register];
  private readonly warned = new Set<string>();
  private readonly requests = new promClient.Counter({
    name: 'http_requests_total',
    help: 'HTTP requests completed, by method, Express route template and status code (499: client went away first).',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });
  private readonly duration = new promClient.Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from request headers received to response finished, by method, route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly requestSize = new promClient.Histogram({
    name: 'http_request_size_bytes',
    help: 'Bytes read from the socket for the request, headers included, by method and route.',
    labelNames: ['method', 'route'] as const,
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  });
  private readonly responseSize = new promClient.Histogram({
    name: 'http_response_size_bytes',
    help: 'Bytes written to the socket for the response, headers included, by method and route.',
    labelNames: ['method', 'route'] as const,
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  });
  private readonly shedTotal = new promClient.Counter({
    name: 'http_requests_shed_total',
    help: 'Requests answered 503 by the pressure gate before reaching the app, by reason (they also count in http_requests_total).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /** Read at scrape time from the worker's own count: no per-request gauge updates. */
  private readonly inFlight = new promClient.Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests being handled right now.',
    registers: [this.registry],
    collect: () => {
      this.inFlight.set(this.inFlightNow());
    },
  });

  /** Set by the worker once its connection tracking exists. */
  inFlightNow: () => number = () => 0;

  constructor(private readonly warn: (msg: string, extra: object) => void) {
    promClient.collectDefaultMetrics({ register: this.registry });
  }

  /** Counts a request the pressure gate answered with 503. */
  shed(reason: string): void {
    this.shedTotal.inc({ reason });
  }

  /** If the app resolves its own copy of prom-client, merge that copy's default registry too. */
  addAppRegistry(appFile: string): void {
    try {
      const appRequire = createRequire(appFile);
      if (appRequire.resolve('prom-client') === require.resolve('prom-client')) return;
      const other = appRequire('prom-client') as typeof promClient;
      this.userRegistries.push(other.register);
    } catch {
      // The app does not use prom-client: nothing to merge.
    }
  }

  /** Bound label children, so the per-request path does no label hashing (bounded: routes x methods x codes). */
  private readonly children = new Map<string, Children>();

  private childrenFor(method: string, route: string, status: string): Children {
    const key = `${method} ${status} ${route}`;
    let c = this.children.get(key);
    if (!c) {
      c = {
        requests: this.requests.labels(method, route, status),
        duration: this.duration.labels(method, route, status),
        requestSize: this.requestSize.labels(method, route),
        responseSize: this.responseSize.labels(method, route),
      };
      this.children.set(key, c);
    }
    return c;
  }

  /** Called for every request before the app sees it. */
  track(req: http.IncomingMessage, res: http.ServerResponse): void {
    const start = performance.now();
    res.once('close', () => {
      const method = METHODS.has(req.method ?? '') ? req.method! : 'OTHER';
      const status = res.writableFinished ? String(res.statusCode) : '499';
      const c = this.childrenFor(method, this.routeOf(req), status);
      c.requests.inc();
      c.duration.observe((performance.now() - start) / 1000);
      const socket = req.socket as CountedSocket;
      const prev = socket[kBytes] ?? { read: 0, written: 0 };
      const now = { read: socket.bytesRead, written: socket.bytesWritten };
      socket[kBytes] = now;
      c.requestSize.observe(now.read - prev.read);
      c.responseSize.observe(now.written - prev.written);
    });
  }

  private routeOf(req: http.IncomingMessage): string {
    const r = (req as { route?: { path?: unknown } }).route;
    if (!r) return UNMATCHED;
    const base = (req as { baseUrl?: string }).baseUrl ?? '';
    const route = base + String(r.path);
    if (this.routes.has(route)) return route;
    if (this.routes.size >= MAX_ROUTES) return OTHER_ROUTE;
    this.routes.add(route);
    return route;
  }

  /** All metrics of this worker as JSON, ready for the primary's aggregation. */
  async snapshot(): Promise<MetricJson[]> {
    const own = (await this.registry.getMetricsAsJSON()) as unknown as MetricJson[];
    const names = new Set(own.map((m) => m.name));
    const out: MetricJson[] = own.map((m) => (RENAMES[m.name] ? { ...m, name: RENAMES[m.name]! } : m));
    for (const reg of this.userRegistries) {
      for (const m of (await reg.getMetricsAsJSON()) as unknown as MetricJson[]) {
        if (names.has(m.name)) {
          if (!this.warned.has(m.name)) {
            this.warned.add(m.name);
            this.warn('app metric has the name of a drover metric; the app one is not exported', { metric: m.name });
          }
          continue;
        }
        names.add(m.name);
        out.push(m);
      }
    }
    return out;
  }
}
