import assert from 'node:assert/strict';
import type * as http from 'node:http';
import { describe, it } from 'node:test';
import * as promClient from 'prom-client';
import { DURATION_BUCKETS, OTHER_ROUTE, RedMetrics, SIZE_BUCKETS, UNMATCHED } from '../../src/worker/red-metrics';

/** The fields RedMetrics reads from a request/response pair; one shared keep-alive socket. */
function exchange(socket: { bytesRead: number; bytesWritten: number }, o: { method?: string; path?: string; base?: string; status?: number; aborted?: boolean; inBytes: number; outBytes: number }) {
  socket.bytesRead += o.inBytes;
  socket.bytesWritten += o.outBytes;
  const req = { method: o.method ?? 'GET', socket, ...(o.path ? { route: { path: o.path }, baseUrl: o.base ?? '' } : {}) } as unknown as http.IncomingMessage;
  const res = { statusCode: o.status ?? 200, writableFinished: !o.aborted } as unknown as http.ServerResponse;
  return { req, res };
}

describe('RED metrics recorded outside prom-client', () => {
  it('export exactly what prom-client histograms and counters fed the same requests export', async () => {
    const red = new RedMetrics();
    const reg = new promClient.Registry();
    const labels3 = ['method', 'route', 'status_code'] as const;
    const requests = new promClient.Counter({ name: 'http_requests_total', help: 'x', labelNames: labels3, registers: [reg] });
    const duration = new promClient.Histogram({ name: 'http_request_duration_seconds', help: 'x', labelNames: labels3, buckets: DURATION_BUCKETS, registers: [reg] });
    const reqSize = new promClient.Histogram({ name: 'http_request_size_bytes', help: 'x', labelNames: ['method', 'route'], buckets: SIZE_BUCKETS, registers: [reg] });
    const resSize = new promClient.Histogram({ name: 'http_response_size_bytes', help: 'x', labelNames: ['method', 'route'], buckets: SIZE_BUCKETS, registers: [reg] });

    const socket = { bytesRead: 0, bytesWritten: 0 };
    const cases = [
      { path: '/items/:id', base: '/api', inBytes: 120, outBytes: 300, ms: 0.4 },
      { path: '/items/:id', base: '/api', inBytes: 64, outBytes: 64, ms: 0.9 }, // sizes exactly on a bound: "le" includes them
      { path: '/items/:id', base: '/api', status: 404, inBytes: 5000, outBytes: 90, ms: 30 },
      { method: 'BREW', inBytes: 70, outBytes: 200, ms: 2 }, // unknown method, no route
      { path: '/slow', aborted: true, inBytes: 80, outBytes: 0, ms: 45_000 }, // client left: 499, beyond the last bucket
    ];
    // RedMetrics reads the clock when a response ends. Held still here, each recorded duration is
    // exactly c.ms: with a running clock, a stall of 0.5 ms between two lines (seen on a busy CI
    // machine) moved the 2 ms case past the 2.5 ms bucket bound.
    const clock = performance.now();
    // An own property over the prototype's method, deleted in `finally`.
    Object.defineProperty(performance, 'now', { value: () => clock, configurable: true, writable: true });
    try {
      for (const c of cases) {
        const { req, res } = exchange(socket, c);
        red.record(req, res, clock - c.ms);
        const method = c.method === 'BREW' ? 'OTHER' : 'GET';
        const route = c.path ? (c.base ?? '') + c.path : UNMATCHED;
        const status = c.aborted ? '499' : String(c.status ?? 200);
        requests.inc({ method, route, status_code: status });
        duration.observe({ method, route, status_code: status }, c.ms / 1000);
        reqSize.observe({ method, route }, c.inBytes);
        resSize.observe({ method, route }, c.outBytes);
      }
    } finally {
      delete (performance as { now?: unknown }).now;
    }

    const ours = red.toJson();
    const theirs = await reg.getMetricsAsJSON();
    assert.deepEqual(ours.map((m) => [m.name, m.type, m.aggregator]), theirs.map((m) => [m.name, m.type, m.aggregator]));
    for (let i = 0; i < ours.length; i++) {
      const key = (v: { labels: object; metricName?: string }) => `${v.metricName ?? ''} ${JSON.stringify(Object.entries(v.labels).sort())}`;
      const a = new Map(ours[i]!.values.map((v) => [key(v), v.value]));
      const b = new Map(theirs[i]!.values.map((v) => [key(v), v.value]));
      assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${ours[i]!.name}: same series`);
      for (const [k, v] of b) {
        // Duration sums are added in floating point in a different order; everything else is exact.
        if (k.startsWith('http_request_duration_seconds_sum')) assert.ok(Math.abs(a.get(k)! - v) < 0.05, k);
        else assert.equal(a.get(k), v, k);
      }
    }
  });

  it('caps distinct routes, so route paths built from data cannot grow series without bound', () => {
    const red = new RedMetrics();
    const socket = { bytesRead: 0, bytesWritten: 0 };
    for (let i = 0; i < 600; i++) {
      const { req, res } = exchange(socket, { path: `/r${i}`, inBytes: 10, outBytes: 10 });
      red.record(req, res, performance.now());
    }
    const routes = new Set(red.toJson()[0]!.values.map((v) => v.labels.route));
    assert.equal(routes.size, 501);
    assert.ok(routes.has(OTHER_ROUTE));
  });
});
