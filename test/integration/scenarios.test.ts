import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeIngestBody } from '../../src/demo/s3';
import { FIXTURES, ROOT, run, startDrover, type Drover } from '../../bench/lib/drover';
import { getJson } from '../helpers/http';

import type { Tally } from '../helpers/probe-client';

const PROBE = path.join(ROOT, 'dist', 'test', 'helpers', 'probe-client.js');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

/** Small requests from a separate process for `ms`, while `work` runs from this one. */
async function smallLatencyDuring(d: Drover, ms: number, work: () => Promise<unknown>): Promise<Tally> {
  const probe = run(process.execPath, [PROBE, String(ms), d.url('/ping')], { timeoutMs: ms + 30_000 });
  await work();
  const out = JSON.parse((await probe).stdout) as Record<string, Tally>;
  return out[d.url('/ping')]!;
}

function post(url: string, body: Buffer | string, contentType = 'application/json'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': contentType } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    }).on('error', reject);
  });
}

describe('keep the event loop free: S0 streaming and S3 offload on one worker', () => {
  let d: Drover;
  before(async () => {
    d = await startDrover({ args: ['--workers', '1', '--worker-timeout', '60s', '--shed-loop-delay', '0ms'] });
  });
  after(async () => {
    await d.stop();
  });

  it('S0: small requests keep answering during GET /clients?mode=stream; with mode=naive they wait', async (t) => {
    const big = (mode: string) => async () => {
      for (let i = 0; i < 2; i++) assert.equal(await get(d.url(`/clients?count=40000&mode=${mode}`)), 200);
    };
    const naive = await smallLatencyDuring(d, 2500, big('naive'));
    const stream = await smallLatencyDuring(d, 2500, big('stream'));
    t.diagnostic(`/ping during naive: n=${naive.count} p99 ${pct(naive.samples, 99)} ms max ${naive.maxMs.toFixed(1)} ms; during stream: n=${stream.count} p99 ${pct(stream.samples, 99)} ms max ${stream.maxMs.toFixed(1)} ms`);
    assert.equal(naive.errors + stream.errors, 0);
    assert.ok(naive.maxMs >= 150, `with res.json() a small request waited noticeably (max ${naive.maxMs} ms)`);
    assert.ok(pct(stream.samples, 99) * 3 < naive.maxMs, 'streaming keeps small requests far below the naive stall');
    assert.ok(stream.count > naive.count, 'more small requests got through while streaming');
  });

  it('S3: small requests keep answering during a 25 MB POST /ingest?mode=offload; with naive they wait', async (t) => {
    const body = makeIngestBody(25_000_000);
    const big = (mode: string) => async () => {
      for (let i = 0; i < 2; i++) {
        const r = await post(d.url(`/ingest?mode=${mode}`), body);
        assert.equal(r.status, 200, r.body);
        assert.ok((JSON.parse(r.body) as { count: number }).count > 90_000);
      }
    };
    const naive = await smallLatencyDuring(d, 3000, big('naive'));
    const offload = await smallLatencyDuring(d, 3000, big('offload'));
    t.diagnostic(`/ping during naive ingest: p99 ${pct(naive.samples, 99)} ms max ${naive.maxMs.toFixed(1)} ms; during offload: p99 ${pct(offload.samples, 99)} ms max ${offload.maxMs.toFixed(1)} ms`);
    assert.equal(naive.errors + offload.errors, 0);
    assert.ok(naive.maxMs >= 150, `naive parsing held the loop (max ${naive.maxMs} ms)`);
    assert.ok(pct(offload.samples, 99) * 3 < naive.maxMs, 'offload keeps small requests far below the naive stall');
    const m = await (await fetch(d.controlUrl('/metrics'))).text();
    for (const phase of ['read', 'parse', 'validate']) assert.match(m, new RegExp(`demo_ingest_phase_seconds_count\\{mode="offload",phase="${phase}"\\} [1-9]`));
  });

  it('S3: a small body POSTed to /ingest?mode=offload while a 25 MB body is on the pool is answered first', async (t) => {
    // Same endpoint, same mode, one worker, one pool thread: only the lanes differ. Ordering is
    // read from events: a small answer that reports an ingest task on the pool was sent while
    // the big body was there, and it must arrive before the big one's answer.
    const small = makeIngestBody(2_000);
    let bigAnswered = false;
    const big = post(d.url('/ingest?mode=offload'), makeIngestBody(25_000_000)).finally(() => (bigAnswered = true));
    let overlapped: { lane: string; poolInFlight: number } | undefined;
    let before = 0;
    while (!bigAnswered && !overlapped) {
      const r = await post(d.url('/ingest?mode=offload'), small);
      assert.equal(r.status, 200, r.body);
      const j = JSON.parse(r.body) as { lane: string; poolInFlight: number; count: number };
      assert.equal(j.lane, 'inline');
      assert.ok(j.count > 0);
      if (j.poolInFlight > 0) overlapped = j;
      else before++;
    }
    assert.ok(overlapped, 'a small body was answered while the big one was on the pool');
    assert.equal(bigAnswered, false, 'the small answer came before the big one');
    const b = await big;
    assert.equal(b.status, 200, b.body);
    const bj = JSON.parse(b.body) as { lane: string; count: number; phasesMs: Record<string, number> };
    assert.equal(bj.lane, 'pool');
    assert.ok(bj.count > 90_000);
    t.diagnostic(`${before} small bodies answered while the big one was being read, then one during its parse; big phases ${JSON.stringify(bj.phasesMs)}`);
  });

  it('bad input gets the right status, no stack trace, and never costs the worker', async () => {
    const before = (await d.status()).workers.map((w) => w.pid);
    const deep = '{"records":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}';
    const badUtf8 = Buffer.concat([Buffer.from('{"records":[{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]);
    const cases: [string, () => Promise<{ status: number; body: string }>, number][] = [
      ['malformed JSON (offload)', () => post(d.url('/ingest?mode=offload'), '{"records": ['), 400],
      ['malformed JSON (naive)', () => post(d.url('/ingest?mode=naive'), '{"records": ['), 400],
      ['100,000 levels of nesting (offload)', () => post(d.url('/ingest?mode=offload'), deep), 400],
      ['invalid UTF-8 (offload)', () => post(d.url('/ingest?mode=offload'), badUtf8), 400],
      ['a record that fails validation', () => post(d.url('/ingest?mode=offload'), '{"records":[{"id":-1}]}'), 400],
      ['wrong content type (offload)', () => post(d.url('/ingest?mode=offload'), '{}', 'text/plain'), 415],
      ['wrong content type (naive)', () => post(d.url('/ingest?mode=naive'), '{}', 'text/plain'), 415],
      ['body over the limit (offload)', () => post(d.url('/ingest?mode=offload'), Buffer.alloc(33 * 2 ** 20, 0x20)), 413],
      ['body over the limit (naive)', () => post(d.url('/ingest?mode=naive'), Buffer.alloc(33 * 2 ** 20, 0x20)), 413],
      ['bad mode', () => post(d.url('/ingest?mode=fast'), '{}'), 400],
      ['bad count', () => getJson(d.url('/clients?count=-5')).then((r) => ({ status: r.status, body: JSON.stringify(r.body) })), 400],
      ['bad ms', () => getJson(d.url('/slow?ms=1e9')).then((r) => ({ status: r.status, body: JSON.stringify(r.body) })), 400],
      ['unknown route', () => getJson(d.url('/../../etc/passwd')).then((r) => ({ status: r.status, body: JSON.stringify(r.body) })), 404],
    ];
    for (const [name, send, status] of cases) {
      const r = await send();
      assert.equal(r.status, status, `${name}: ${r.body.slice(0, 200)}`);
      const body = JSON.parse(r.body) as { error: { code: string; message: string } };
      assert.equal(typeof body.error.code, 'string', name);
      assert.doesNotMatch(r.body, /at [\w.<>]+ \(|\/work\/|node_modules|dist\//, `${name}: no stack trace or internal path`);
    }
    const after = await d.status();
    assert.deepEqual(after.workers.map((w) => w.pid), before, 'the worker survived every bad request');
    assert.equal(d.count('worker exited'), 0);
    const ok = await getJson(d.url('/ping'));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-powered-by'), null, 'x-powered-by is off');
  });
});

describe('load shedding', () => {
  it('under sustained overload: 503 with Retry-After and Connection: close, counted; /livez stays 200', async (t) => {
    const d = await startDrover({ args: ['--workers', '1', '--worker-timeout', '60s', '--shed-loop-delay', '50ms'] });
    try {
      const probe = run(process.execPath, [PROBE, '3000', d.controlUrl('/livez')], { timeoutMs: 30_000 });
      // Overload: requests that each hold the loop 200 ms, arriving faster than they finish.
      const results: { status: number; retryAfter?: string; connection?: string }[] = [];
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 6; i++) {
            const r = await new Promise<{ status: number; retryAfter?: string; connection?: string }>((resolve, reject) => {
              http.get(d.url('/block?ms=200'), { agent: false }, (res) => {
                res.resume();
                res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], connection: res.headers.connection }));
              }).on('error', reject);
            });
            results.push(r);
          }
        }),
      );
      const shed = results.filter((r) => r.status === 503);
      t.diagnostic(`${shed.length} of ${results.length} overload requests shed`);
      assert.ok(shed.length > 0, 'some requests were shed');
      assert.ok(results.some((r) => r.status === 200), 'some were served');
      for (const r of shed) {
        assert.equal(r.retryAfter, '1');
        assert.equal(r.connection, 'close');
      }
      const livez = (JSON.parse((await probe).stdout) as Record<string, Tally>)[d.controlUrl('/livez')]!;
      assert.equal(livez.statuses['200'], livez.count, '/livez answered 200 every time');
      const m = await (await fetch(d.controlUrl('/metrics'))).text();
      const counted = Number(/http_requests_shed_total\{reason="event_loop_delay"\} (\d+)/.exec(m)?.[1]);
      assert.equal(counted, shed.length);
    } finally {
      await d.stop();
    }
  });
  it('with the default limit the sensor is dormant: no Fastify in the worker until a beat is late by half the limit', async () => {
    const d = await startDrover({ app: path.join(FIXTURES, 'sensor-app.js'), args: ['--workers', '1', '--worker-timeout', '60s'] });
    const loaded = async () => (await getJson<{ loaded: boolean }>(d.url('/fastify-loaded'))).body.loaded;
    const running = async () => Number(/^http_shed_sensor_running (\d+)$/m.exec(await (await fetch(d.controlUrl('/metrics'))).text())?.[1]);
    try {
      for (let i = 0; i < 300; i++) assert.equal((await getJson(d.url('/ping'))).status, 200);
      assert.equal(await loaded(), false, '300 requests on a loop that keeps time did not load Fastify');
      assert.equal(await running(), 0, 'http_shed_sensor_running says the sensor sleeps');
      // 400 ms: the next beat is late by more than half of the default 500 ms limit.
      assert.equal((await getJson(d.url('/block?ms=400'))).status, 200);
      await d.until(loaded, 'the late beat started the sensor');
      await d.until(async () => (await running()) === 1, 'http_shed_sensor_running says the sensor runs');
    } finally {
      await d.stop();
    }
  });

  it('a stall shorter than the threshold sheds nothing (the sensor reads no sample through a block)', async (t) => {
    // @fastify/under-pressure reports Infinity for a sample its histogram got no reading in, which
    // happens when a block spans the sample: before drover's gate read that as "at least one
    // sample interval", every /ping after a 300 ms block got 503 with a 5 s threshold.
    // A heap limit keeps the sensor running whenever requests come (with the delay limit alone it
    // sleeps until a beat is 2.5 s late, and would not be there to read the sample a block spans).
    const d = await startDrover({ args: ['--workers', '1', '--worker-timeout', '60s', '--shed-loop-delay', '5s', '--shed-heap', '100000'] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const status = (p: string) =>
      new Promise<number>((resolve, reject) => {
        http.get(d.url(p), { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        }).on('error', reject);
      });
    try {
      const codes: Record<string, number> = {};
      for (const ms of [300, 600, 1000]) {
        for (let rep = 0; rep < 3; rep++) {
          assert.equal(await status(`/block?ms=${ms}`), 200);
          // Right after the block, inside the sample that spans it.
          for (let i = 0; i < 10; i++) {
            const c = await status('/ping');
            codes[c] = (codes[c] ?? 0) + 1;
          }
        }
      }
      t.diagnostic(`/ping right after 300, 600 and 1,000 ms blocks (3 each): ${JSON.stringify(codes)}`);
      assert.deepEqual(codes, { 200: 90 });
    } finally {
      agent.destroy();
      await d.stop();
    }
  });
});
