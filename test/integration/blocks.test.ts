/**
 * Issue 17: the route that blocks the event loop, named in production with no code change.
 * One worker, real processes, `/ping` traffic running throughout; each blocking route of the demo
 * app loops a few times, and drover's own metrics (drover_event_loop_blocked_seconds_total) must
 * put ≥ 90 % of the blocked seconds on that route and none on /ping; the captured stack must name
 * the code that blocked. The same routes' stream / offload / async modes must produce no block.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeIngestBody } from '../../src/demo/s3';
import { FIXTURES, startDrover, type Drover, type LogLine } from '../../bench/lib/drover';
import { sendMany, type ManyResult } from '../helpers/http';
import { parseMetrics, series } from '../helpers/prom';
import { startUpstream, type Upstream } from '../../bench/lib/upstream';

/** A 30 s watchdog and no shedding: the test blocks the loop on purpose (as io.test.ts). */
const ARGS = ['--workers', '1', '--worker-timeout', '30s', '--shed-loop-delay', '0ms'];

type Blocked = Map<string, { count: number; seconds: number }>;

async function blocked(d: Drover): Promise<Blocked> {
  const text = await (await fetch(d.controlUrl('/metrics'))).text();
  const samples = parseMetrics(text);
  const out: Blocked = new Map();
  for (const s of series(samples, 'drover_event_loop_blocks_total')) out.set(s.labels.route!, { count: s.value, seconds: 0 });
  for (const s of series(samples, 'drover_event_loop_blocked_seconds_total')) {
    const e = out.get(s.labels.route!) ?? { count: 0, seconds: 0 };
    e.seconds = s.value;
    out.set(s.labels.route!, e);
  }
  return out;
}

function delta(after: Blocked, before: Blocked): Blocked {
  const out: Blocked = new Map();
  for (const [route, a] of after) {
    const b = before.get(route) ?? { count: 0, seconds: 0 };
    if (a.count > b.count) out.set(route, { count: a.count - b.count, seconds: a.seconds - b.seconds });
  }
  return out;
}

function request(url: string, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: body ? 'POST' : 'GET', agent: false, headers: body ? { 'content-type': 'application/json', 'content-length': body.length } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends `n` requests one after the other and reads the block counters around them (snapshots are fresh per scrape). */
async function loop(d: Drover, n: number, url: string, body?: Buffer): Promise<Blocked> {
  const before = await blocked(d);
  for (let i = 0; i < n; i++) assert.equal(await request(d.url(url), body), 200, url);
  return delta(await blocked(d), before);
}

function share(b: Blocked, route: string): number {
  let all = 0;
  for (const v of b.values()) all += v.seconds;
  return all === 0 ? 0 : (b.get(route)?.seconds ?? 0) / all;
}

function describeBlocks(b: Blocked): string {
  return JSON.stringify([...b].map(([r, v]) => ({ route: r, count: v.count, s: +v.seconds.toFixed(3) })));
}

describe('what blocks the loop: the demo app on one worker, /ping running throughout', () => {
  let up: Upstream;
  let d: Drover;
  let stopPing: () => void;
  let ping: Promise<ManyResult>;
  const INGEST = makeIngestBody(25e6);

  before(async () => {
    up = await startUpstream();
    d = await startDrover({ args: ARGS, env: { UPSTREAM_URL: up.url } });
    const stop = new Promise<void>((r) => (stopPing = r));
    ping = sendMany(d.url('/ping'), stop, { keepAlive: 1 });
  });
  after(async () => {
    stopPing?.();
    await ping;
    await d?.stop();
    await up?.stop();
  });

  const CASES = [
    { route: '/block', url: '/block?ms=300', where: /src\/demo\/app\.ts/ },
    { route: '/clients', url: '/clients?mode=naive', where: /buildClients|stringify|json/ },
    // Eight, not three: this block runs in the request's 'end' event, so its request is found on
    // the paused stack, and pauses draw on a budget that a run of blocks must not exhaust.
    { route: '/ingest', url: '/ingest?mode=naive', body: true, where: /body-parser|buildRecords|toRecord/, n: 8 },
    { route: '/upstream', url: '/upstream?mode=blocking&waitms=300', where: /sync-http|httpGetSync|blockingUpstreamCall/ },
  ];
  for (const c of CASES) {
    it(`${c.url}: its own route holds ≥ 90 % of the blocked seconds, with a stack naming ${c.where.source}`, async () => {
      const from = d.lines.length;
      const n = c.n ?? 3;
      const b = await loop(d, n, c.url, c.body ? INGEST : undefined);
      assert.ok((b.get(c.route)?.count ?? 0) >= n, `every request blocked the loop once: ${describeBlocks(b)}`);
      assert.ok(share(b, c.route) >= 0.9, `share of ${c.route}: ${describeBlocks(b)}`);
      assert.equal(b.get('/ping'), undefined, `/ping blocked nothing: ${describeBlocks(b)}`);
      const line = await d.waitFor((l: LogLine) => l.msg === 'event loop blocked' && l.route === c.route, 5000, from);
      const stack = line.stack as string[];
      assert.ok(Array.isArray(stack) && stack.some((f) => c.where.test(f)), `stack of ${c.route}: ${JSON.stringify(stack)}`);
    });
  }

  it('the stream, offload and async modes of the same routes block nothing', async () => {
    const before = await blocked(d);
    for (const url of ['/clients?mode=stream', '/upstream?mode=async&waitms=300', '/upstream?mode=offload&waitms=300']) {
      for (let i = 0; i < 3; i++) assert.equal(await request(d.url(url)), 200, url);
    }
    for (let i = 0; i < 3; i++) assert.equal(await request(d.url('/ingest?mode=offload'), INGEST), 200);
    const b = delta(await blocked(d), before);
    assert.equal(b.size, 0, `no block: ${describeBlocks(b)}`);
  });

  it('/ping never failed meanwhile', async () => {
    stopPing();
    const r = await ping;
    assert.ok(r.ok > 100, `pings answered: ${r.ok}`);
    assert.equal(r.failed, 0, JSON.stringify(r.statuses));
  });
});

describe('what blocks the loop: code after an await, before routing, and in a timer', () => {
  let d: Drover;
  let stopPing: () => void;
  let ping: Promise<ManyResult>;
  before(async () => {
    d = await startDrover({ app: path.join(FIXTURES, 'blocking-app.js'), args: ARGS });
    ping = sendMany(d.url('/ping'), new Promise<void>((r) => (stopPing = r)), { keepAlive: 1 });
  });
  after(async () => {
    stopPing?.();
    await ping;
    await d?.stop();
  });

  it('a block resumed after an await is its route’s (found on the paused stack)', async () => {
    const b = await loop(d, 3, '/after-await/7?ms=250');
    assert.ok((b.get('/after-await/:id')?.count ?? 0) >= 1, describeBlocks(b));
    assert.ok(share(b, '/after-await/:id') >= 0.9, describeBlocks(b));
  });

  it('a block in middleware before Express matched the route is counted once the route is known', async () => {
    const b = await loop(d, 2, '/late/1?early=250');
    assert.ok((b.get('/late/:id')?.count ?? 0) >= 2, describeBlocks(b));
  });

  it('a block in a timer no request owns is (none)', async () => {
    const before = await blocked(d);
    assert.equal(await request(d.url('/timer?ms=250')), 200);
    await d.until(async () => (delta(await blocked(d), before).get('(none)')?.count ?? 0) >= 1, 'the timer block is counted', 5000);
    const b = delta(await blocked(d), before);
    assert.equal(b.get('/timer'), undefined, describeBlocks(b));
  });
});

describe('--block-threshold 0ms', () => {
  it('turns detection off: no block metric, no log line', async () => {
    const d = await startDrover({ args: [...ARGS, '--block-threshold', '0ms'] });
    try {
      assert.equal(await request(d.url('/block?ms=300')), 200);
      const text = await (await fetch(d.controlUrl('/metrics'))).text();
      assert.doesNotMatch(text, /drover_event_loop_blocks_total/);
      assert.equal(d.count('event loop blocked'), 0);
    } finally {
      await d.stop();
    }
  });
});
