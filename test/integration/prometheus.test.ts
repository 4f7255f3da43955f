import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startDrover, type Drover } from '../../bench/lib/drover';
import { sendMany } from '../helpers/http';
import { prometheusSkipReason, startPrometheus, type Prometheus } from '../helpers/prometheus';

describe('a real Prometheus scrapes drover', () => {
  const skip = prometheusSkipReason();
  let d: Drover | undefined;
  let prom: Prometheus | undefined;
  after(async () => {
    await prom?.stop();
    await d?.stop();
  });

  it('PromQL through the HTTP API returns the request total drover served', { skip }, async (t) => {
    d = await startDrover({ args: ['--workers', '2'] });
    // Warm-up traffic, so the series exist at Prometheus' first scrape and rate() has a baseline.
    const W = 10;
    await sendMany(d.url('/ping'), W);
    prom = await startPrometheus([`127.0.0.1:${d.controlPort}`]);
    await prom.until('up{job="drover"}', (r) => r.length === 1 && r[0]!.value[1] === '1');
    const K = 250;
    const r = await sendMany(d.url('/ping'), K);
    assert.equal(r.ok, K);
    const res = await prom.until('sum(http_requests_total{job="drover",route="/ping",status_code="200"})', (x) => x[0]?.value[1] === String(K + W));
    t.diagnostic(`prometheus sees ${res[0]!.value[1]} /ping requests`);
    const listening = await prom.query('drover_workers{state="listening"}');
    assert.equal(listening[0]?.value[1], '2');
    const p95 = await prom.until(
      'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{route="/ping"}[1m])))',
      (x) => x.length === 1 && Number.isFinite(Number(x[0]!.value[1])),
    );
    t.diagnostic(`p95 of /ping from the histogram: ${Number(p95[0]!.value[1]) * 1000} ms`);
  });
});
