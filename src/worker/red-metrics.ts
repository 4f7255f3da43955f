import type * as http from 'node:http';
import type { Socket } from 'node:net';
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

/** Socket byte counters at the end of the previous response on the same (keep-alive) socket. */
const kRead = Symbol('drover.bytesReadBefore');
const kWritten = Symbol('drover.bytesWrittenBefore');
type CountedSocket = Socket & { [kRead]?: number; [kWritten]?: number };

/** One method/route/status combination; bucket arrays hold per-bucket (not cumulative) counts, +Inf last. */
interface Series {
  method: string;
  route: string;
  status: string;
  count: number;
  durationSum: number;
  duration: Float64Array;
  requestBytesSum: number;
  requestBytes: Float64Array;
  responseBytesSum: number;
  responseBytes: Float64Array;
}

function bucketOf(bounds: readonly number[], v: number): number {
  // Prometheus buckets are "less than or equal": the first bound not below v.
  let i = 0;
  while (i < bounds.length && v > bounds[i]!) i++;
  return i;
}

/**
 * drover's HTTP RED metrics (requests, duration, request and response size), recorded on the
 * request path into plain arrays and turned into prom-client's JSON form only when a snapshot is
 * taken (about once a second). Measured with callgrind on the worker's /ping path (ADR 0007):
 * recording through prom-client's label-bound children added ~43k instructions per request (5 %
 * of the request); recording here adds an amount within the run-to-run spread (±1.5 %), since
 * nothing is hashed, validated or allocated per request beyond one Map lookup. The JSON has
 * exactly the shape of prom-client's getMetricsAsJSON() (a unit test compares the two), so the
 * primary aggregates it with prom-client like every other metric.
 */
export class RedMetrics {
  private readonly series = new Map<string, Series>();
  private readonly routes = new Set<string>();

  /** Called once per response, when it finished or the client went away (`startedAt`: performance.now()). */
  record(req: http.IncomingMessage, res: http.ServerResponse, startedAt: number): void {
    const method = METHODS.has(req.method!) ? req.method! : 'OTHER';
    const status = res.writableFinished ? res.statusCode : 499;
    const route = this.routeOf(req);
    const key = method + status + route;
    let s = this.series.get(key);
    if (!s) {
      s = {
        method, route, status: String(status), count: 0,
        durationSum: 0, duration: new Float64Array(DURATION_BUCKETS.length + 1),
        requestBytesSum: 0, requestBytes: new Float64Array(SIZE_BUCKETS.length + 1),
        responseBytesSum: 0, responseBytes: new Float64Array(SIZE_BUCKETS.length + 1),
      };
      this.series.set(key, s);
    }
    const seconds = (performance.now() - startedAt) / 1000;
    s.count++;
    s.durationSum += seconds;
    s.duration[bucketOf(DURATION_BUCKETS, seconds)]!++;
    // Bytes since the previous response on this socket: keep-alive sockets carry many requests.
    const socket = req.socket as CountedSocket;
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    const reqBytes = read - (socket[kRead] ?? 0);
    const resBytes = written - (socket[kWritten] ?? 0);
    socket[kRead] = read;
    socket[kWritten] = written;
    s.requestBytesSum += reqBytes;
    s.requestBytes[bucketOf(SIZE_BUCKETS, reqBytes)]!++;
    s.responseBytesSum += resBytes;
    s.responseBytes[bucketOf(SIZE_BUCKETS, resBytes)]!++;
  }

  /** The route label of a request: its Express template, `(unmatched)`, or `(other)` past the cap (shared by every per-route metric). */
  routeOf(req: http.IncomingMessage): string {
    const r = (req as { route?: { path?: unknown } }).route;
    if (!r) return UNMATCHED;
    const base = (req as { baseUrl?: string }).baseUrl ?? '';
    const route = base + String(r.path);
    if (this.routes.has(route)) return route;
    if (this.routes.size >= MAX_ROUTES) return OTHER_ROUTE;
    this.routes.add(route);
    return route;
  }

  /** The four metrics as prom-client's getMetricsAsJSON() would give them. */
  toJson(): MetricJson[] {
    const all = [...this.series.values()];
    // Size histograms are by method and route only: fold the status codes together.
    const bySizeKey = new Map<string, { labels: Record<string, string>; reqSum: number; req: Float64Array; resSum: number; res: Float64Array }>();
    for (const s of all) {
      const k = `${s.method} ${s.route}`;
      let agg = bySizeKey.get(k);
      if (!agg) {
        agg = { labels: { method: s.method, route: s.route }, reqSum: 0, req: new Float64Array(SIZE_BUCKETS.length + 1), resSum: 0, res: new Float64Array(SIZE_BUCKETS.length + 1) };
        bySizeKey.set(k, agg);
      }
      agg.reqSum += s.requestBytesSum;
      agg.resSum += s.responseBytesSum;
      for (let i = 0; i < s.requestBytes.length; i++) {
        agg.req[i]! += s.requestBytes[i]!;
        agg.res[i]! += s.responseBytes[i]!;
      }
    }
    const labels = (s: Series) => ({ method: s.method, route: s.route, status_code: s.status });
    const sizes = [...bySizeKey.values()];
    return [
      counter('http_requests_total', 'HTTP requests completed, by method, Express route template and status code (499: client went away first).',
        all.map((s) => ({ labels: labels(s), value: s.count }))),
      histogram('http_request_duration_seconds', 'Time from request headers received to response finished, by method, route and status code.',
        DURATION_BUCKETS, all.map((s) => ({ labels: labels(s), buckets: s.duration, sum: s.durationSum }))),
      histogram('http_request_size_bytes', 'Bytes read from the socket for the request, headers included, by method and route.',
        SIZE_BUCKETS, sizes.map((a) => ({ labels: a.labels, buckets: a.req, sum: a.reqSum }))),
      histogram('http_response_size_bytes', 'Bytes written to the socket for the response, headers included, by method and route.',
        SIZE_BUCKETS, sizes.map((a) => ({ labels: a.labels, buckets: a.res, sum: a.resSum }))),
    ];
  }
}

function counter(name: string, help: string, values: MetricJson['values']): MetricJson {
  return { name, help, type: 'counter', aggregator: 'sum', values };
}

/** prom-client's histogram JSON: cumulative `_bucket` values with `le`, then `_sum` and `_count`, per series. */
function histogram(
  name: string,
  help: string,
  bounds: readonly number[],
  series: { labels: Record<string, string>; buckets: Float64Array; sum: number }[],
): MetricJson {
  const values: MetricJson['values'] = [];
  for (const s of series) {
    let acc = 0;
    for (let i = 0; i < bounds.length; i++) {
      acc += s.buckets[i]!;
      values.push({ labels: { ...s.labels, le: bounds[i]! }, value: acc, metricName: `${name}_bucket` });
    }
    acc += s.buckets[bounds.length]!;
    values.push({ labels: { ...s.labels, le: '+Inf' }, value: acc, metricName: `${name}_bucket` });
    values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` });
    values.push({ labels: { ...s.labels }, value: acc, metricName: `${name}_count` });
  }
  return { name, help, type: 'histogram', aggregator: 'sum', values };
}
