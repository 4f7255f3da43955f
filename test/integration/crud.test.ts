/**
 * S2 `/items` CRUD of the demo app, the same behaviour tests on both backends: embedded SQLite
 * (one file shared by the workers) and a throwaway PostgreSQL cluster. Real drover, two workers;
 * every request goes over HTTP from this process.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startDrover, type Drover } from '../../bench/lib/drover';
import { postgresSkipReason, startPostgres, type Postgres } from '../../bench/lib/postgres';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON (several shapes), or the raw text. */
  body: any;
  /** The worker that answered (`x-worker-pid`). */
  pid: number;
}

interface CallOptions {
  json?: unknown;
  raw?: string | Buffer;
  type?: string;
  /** Send the body chunked (no Content-Length), so only the streaming limit can catch it. */
  chunked?: boolean;
  /** Default: none, i.e. a new connection per request, which the dispatcher spreads over workers. */
  agent?: http.Agent;
}

function call(d: Drover, method: string, p: string, o: CallOptions = {}): Promise<Reply> {
  const raw = o.json !== undefined ? JSON.stringify(o.json) : o.raw;
  const headers: Record<string, string> = {};
  if (raw !== undefined) headers['content-type'] = o.type ?? 'application/json';
  if (raw !== undefined && !o.chunked) headers['content-length'] = String(Buffer.byteLength(raw));
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(d.url(p), { method, headers, agent: o.agent ?? false }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          /* not JSON: kept as text, the assertion will show it */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, pid: Number(res.headers['x-worker-pid']) });
      });
    });
    // A server refusing a big body may answer before we finish sending: the answer is what counts.
    req.on('error', (err) => answered || reject(err));
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${p}: no answer in 15 s`)));
    if (raw !== undefined && o.chunked) {
      const buf = Buffer.from(raw);
      for (let i = 0; i < buf.length; i += 8192) req.write(buf.subarray(i, i + 8192));
    } else if (raw !== undefined) req.write(raw);
    req.end();
  });
}

/** A 4xx/5xx answer in drover's error shape, whose message names `field`, with no stack in it. */
function assertError(r: Reply, status: number, code: string, field?: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body?.error?.code, code, JSON.stringify(r.body));
  if (field) assert.ok(String(r.body.error.message).startsWith(field), `message names ${field}: ${r.body.error.message}`);
  assert.doesNotMatch(JSON.stringify(r.body), /\n\s+at |\.[jt]s:\d+/, 'no stack trace');
}

const workerPids = async (d: Drover) => (await d.status()).workers.map((w) => w.pid).sort();

interface Backend {
  name: string;
  skip: string | undefined;
  setup(): Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    skip: undefined,
    async setup() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-crud-'));
      const cleanup = async () => fs.rmSync(dir, { recursive: true, force: true });
      return { env: { DATABASE_URL: '', DEMO_SQLITE_PATH: path.join(dir, 'items.sqlite') }, cleanup };
    },
  },
  {
    name: 'PostgreSQL',
    skip: postgresSkipReason(),
    async setup() {
      const pg = await startPostgres();
      return { env: { DATABASE_URL: pg.url, DEMO_PG_POOL: '4' }, cleanup: () => pg.stop() };
    },
  },
];

for (const backend of backends) {
  describe(`/items CRUD on ${backend.name}`, { skip: backend.skip }, () => {
    let d: Drover;
    let cleanup: (() => Promise<void>) | undefined;
    let pids: number[];
    before(async () => {
      const s = await backend.setup();
      cleanup = s.cleanup;
      d = await startDrover({ args: ['--workers', '2'], env: s.env });
      pids = await workerPids(d);
    });
    after(async () => {
      await d?.stop();
      await cleanup?.();
    });

    /** The workers that started are the ones serving: nothing crashed or was replaced. */
    const assertWorkersAlive = async () => {
      assert.deepEqual(await workerPids(d), pids, 'same worker pids as at start');
      assert.equal(d.count('worker exited'), 0, d.tail());
    };

    it('create → get → list (newest first) → delete → get 404', async () => {
      // Tags that PostgreSQL's array syntax and SQLite's JSON column must both round-trip.
      const input = { name: 'espresso machine ☕', price: 249.5, tags: ['kitchen', 'say "hi", {x}\\y', 'NULL', ''] };
      const created = await call(d, 'POST', '/items', { json: input });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const item = created.body;
      assert.ok(Number.isInteger(item.id) && item.id > 0);
      assert.deepEqual({ name: item.name, price: item.price, tags: item.tags }, input);
      assert.ok(Math.abs(Date.parse(item.created_at) - Date.now()) < 60_000, `created_at ${item.created_at}`);
      assert.equal(created.headers.location, `/items/${item.id}`);

      assert.deepEqual((await call(d, 'GET', `/items/${item.id}`)).body, item);
      const list = await call(d, 'GET', '/items?limit=5');
      assert.equal(list.status, 200);
      assert.equal(list.body.items.length, 5, 'the seed gives reads data');
      assert.deepEqual(list.body.items[0], item, 'newest first');
      const ids = list.body.items.map((i: { id: number }) => i.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
      assert.equal((await call(d, 'GET', '/items')).body.items.length, 20, 'default limit');
      assert.equal((await call(d, 'GET', '/items?limit=100')).body.items.length, 100);

      const del = await call(d, 'DELETE', `/items/${item.id}`);
      assert.equal(del.status, 204);
      assert.equal(del.body, undefined);
      assertError(await call(d, 'GET', `/items/${item.id}`), 404, 'NOT_FOUND');
      assertError(await call(d, 'DELETE', `/items/${item.id}`), 404, 'NOT_FOUND');
    });

    it('validation errors are 400s naming the field; unknown ids 404', async () => {
      const post = (json: unknown) => call(d, 'POST', '/items', { json });
      assertError(await post({ price: 1 }), 400, 'VALIDATION_FAILED', 'name');
      assertError(await post({ name: '', price: 1 }), 400, 'VALIDATION_FAILED', 'name');
      assertError(await post({ name: 'x'.repeat(201), price: 1 }), 400, 'VALIDATION_FAILED', 'name');
      assert.equal((await post({ name: 'é'.repeat(200), price: 0 })).status, 201, '200 characters is allowed');
      assertError(await post({ name: 'a' }), 400, 'VALIDATION_FAILED', 'price');
      assertError(await post({ name: 'a', price: -0.01 }), 400, 'VALIDATION_FAILED', 'price');
      assertError(await post({ name: 'a', price: '3' }), 400, 'VALIDATION_FAILED', 'price');
      assertError(await call(d, 'POST', '/items', { raw: '{"name":"a","price":1e400}' }), 400, 'VALIDATION_FAILED', 'price');
      assertError(await post({ name: 'a', price: 1, tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }), 400, 'VALIDATION_FAILED', 'tags');
      assertError(await post({ name: 'a', price: 1, tags: ['ok', 'x'.repeat(51)] }), 400, 'VALIDATION_FAILED', 'tags[1]');
      assertError(await post({ name: 'a', price: 1, tags: 'solo' }), 400, 'VALIDATION_FAILED', 'tags');
      assertError(await post({ name: 'a\u0000b', price: 1 }), 400, 'VALIDATION_FAILED', 'name');
      assertError(await post({ name: 'a', prise: 1 }), 400, 'VALIDATION_FAILED', 'prise');
      assertError(await post([{ name: 'a', price: 1 }]), 400, 'VALIDATION_FAILED', 'body');
      for (const bad of ['abc', '0', '-1', '1.5', '01', '1e3']) {
        assertError(await call(d, 'GET', `/items/${bad}`), 400, 'VALIDATION_FAILED', 'id');
        assertError(await call(d, 'DELETE', `/items/${bad}`), 400, 'VALIDATION_FAILED', 'id');
      }
      for (const bad of ['0', '101', 'ten', '-5']) assertError(await call(d, 'GET', `/items?limit=${bad}`), 400, 'VALIDATION_FAILED', 'limit');
      for (const missing of ['2000000000', '99999999999999999999']) {
        assertError(await call(d, 'GET', `/items/${missing}`), 404, 'NOT_FOUND');
        assertError(await call(d, 'DELETE', `/items/${missing}`), 404, 'NOT_FOUND');
      }
      assertError(await call(d, 'PUT', '/items/1', { json: {} }), 405, 'METHOD_NOT_ALLOWED');
      await assertWorkersAlive();
    });

    it('malformed JSON 400, wrong content type 415, body over 64 KiB 413', async () => {
      assertError(await call(d, 'POST', '/items', { raw: '{"name": "a", "price":' }), 400, 'MALFORMED_JSON');
      assertError(await call(d, 'POST', '/items', { raw: '' }), 400, 'MALFORMED_JSON');
      assertError(await call(d, 'POST', '/items', { raw: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]) }), 400, 'INVALID_UTF8');
      assertError(await call(d, 'POST', '/items', { raw: '['.repeat(300) + ']'.repeat(300) }), 400, 'TOO_DEEP');
      assertError(await call(d, 'POST', '/items', { raw: 'name=a&price=1', type: 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      assertError(await call(d, 'POST', '/items', { raw: '{}', type: 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      const big = JSON.stringify({ name: 'big', price: 1, tags: ['x'.repeat(70 * 1024)] });
      assertError(await call(d, 'POST', '/items', { raw: big }), 413, 'BODY_TOO_LARGE');
      assertError(await call(d, 'POST', '/items', { raw: big, chunked: true }), 413, 'BODY_TOO_LARGE');
      const justUnder = JSON.stringify({ name: 'fits', price: 1, tags: ['y'] }).padEnd(64 * 1024, ' ');
      assert.equal((await call(d, 'POST', '/items', { raw: justUnder, chunked: true })).status, 201, 'exactly 64 KiB is accepted');
      await assertWorkersAlive();
    });

    it('300 concurrent mixed requests (75 % read, 20 % write, 5 % delete) over 2 workers: no 5xx', async (t) => {
      const existing: number[] = (await call(d, 'GET', '/items?limit=100')).body.items.map((i: { id: number }) => i.id);
      const doomed = existing.slice(0, 15);
      const readable = existing.slice(15);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const statuses: Record<string, number> = {};
      const byPid = new Map<number, number>();
      const created: { id: number; name: string }[] = [];
      const N = 300;
      let next = 0;
      const started = performance.now();
      const one = async (i: number) => {
        const kind = i % 20;
        let r: Reply;
        if (kind < 15) r = await call(d, 'GET', i % 3 ? `/items/${readable[i % readable.length]}` : '/items?limit=20', { agent });
        else if (kind < 19) r = await call(d, 'POST', '/items', { json: { name: `burst ${i}`, price: i / 4, tags: ['burst'] }, agent });
        else r = await call(d, 'DELETE', `/items/${doomed[(i - 19) / 20]}`, { agent });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        byPid.set(r.pid, (byPid.get(r.pid) ?? 0) + 1);
        if (r.status === 201) created.push(r.body);
      };
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < N) await one(next++);
      }));
      const ms = performance.now() - started;
      agent.destroy();
      t.diagnostic(`${N} requests in ${ms.toFixed(0)} ms (concurrency 16, keep-alive); statuses ${JSON.stringify(statuses)}; per worker pid ${JSON.stringify([...byPid])}`);
      assert.deepEqual(statuses, { 200: 225, 201: 60, 204: 15 });
      assert.equal(created.length, 60);
      for (const c of created.slice(0, 10)) assert.equal((await call(d, 'GET', `/items/${c.id}`)).body.name, c.name);
      for (const id of doomed.slice(0, 5)) assert.equal((await call(d, 'GET', `/items/${id}`)).status, 404);
      await assertWorkersAlive();
    });

    it('both workers share the store: written through one, read through the other', async () => {
      const made = await call(d, 'POST', '/items', { json: { name: 'shared', price: 3, tags: [] } });
      assert.equal(made.status, 201);
      assert.ok(pids.includes(made.pid), `served by a worker listed in /status (${made.pid})`);
      // New connections go round-robin among idle workers: the other one answers within a few tries.
      let seen: Reply | undefined;
      for (let i = 0; i < 20 && !seen; i++) {
        const r = await call(d, 'GET', `/items/${made.body.id}`);
        assert.equal(r.status, 200);
        if (r.pid !== made.pid) seen = r;
      }
      assert.ok(seen, 'no read was served by the other worker');
      assert.ok(pids.includes(seen.pid));
      assert.deepEqual(seen.body, made.body);
      let listed: Reply | undefined;
      for (let i = 0; i < 20 && !listed; i++) {
        const r = await call(d, 'GET', '/items?limit=1');
        if (r.pid !== made.pid) listed = r;
      }
      assert.deepEqual(listed?.body.items, [made.body], 'the other worker lists it first');
      await assertWorkersAlive();
    });
  });
}

describe('/items while PostgreSQL is down', { skip: postgresSkipReason() }, () => {
  let d: Drover | undefined;
  let pg: Postgres | undefined;
  after(async () => {
    await d?.stop();
    await pg?.stop();
  });

  it('answers 503 for /items, /ping stays 200, no worker dies', async (t: TestContext) => {
    pg = await startPostgres();
    d = await startDrover({ args: ['--workers', '2'], env: { DATABASE_URL: pg.url } });
    const pids = await workerPids(d);
    const warm = await Promise.all(Array.from({ length: 6 }, () => call(d!, 'GET', '/items?limit=3')));
    assert.deepEqual(warm.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    assert.equal(new Set(warm.map((r) => r.pid)).size, 2, 'both workers hold open pools');

    await pg.stop(); // fast shutdown: the server disconnects every pooled connection

    const down = [];
    const pinged = new Set<number>();
    for (let i = 0; i < 10; i++) {
      down.push(await call(d, 'GET', i % 2 ? '/items/1' : '/items'));
      down.push(await call(d, 'POST', '/items', { json: { name: 'lost', price: 1 } }));
      const ping = await call(d, 'GET', '/ping');
      assert.equal(ping.status, 200);
      pinged.add(ping.body.pid);
    }
    for (const r of down) {
      assertError(r, 503, 'DB_UNAVAILABLE');
      assert.equal(r.headers['retry-after'], '1');
    }
    t.diagnostic(`503s by worker: ${JSON.stringify([...new Set(down.map((r) => r.pid))])}`);
    assert.equal(new Set(down.map((r) => r.pid)).size, 2, 'both workers answered 503');
    assert.equal(pinged.size, 2, 'both workers answered /ping');
    assert.equal((await call(d, 'GET', '/items?limit=bad')).status, 400, 'validation still answers first');
    assert.deepEqual(await workerPids(d), pids);
    assert.equal(d.count('worker exited'), 0, d.tail());
  });
});
