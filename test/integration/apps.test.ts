/**
 * The app contract end to end (ADR 0015): every kind of export drover accepts is served by a
 * real drover over real HTTP, through drover's own request path (request metrics, drain's
 * `Connection: close`); what it cannot serve stops it with exit 3 and says why; TypeScript
 * entries run through the app's tsx, and their stalls point at the .ts lines.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, run, startDrover, type Drover } from '../../bench/lib/drover';
import { getJson } from '../helpers/http';
import { parseMetrics, total } from '../helpers/prom';

const APPS = path.join(FIXTURES, 'apps');
const startArgs = ['--port', '0', '--control-port', '0', '--host', '127.0.0.1'];

/**
 * A GET asking for keep-alive (as browsers and fetch do), so a `Connection: close` in the answer
 * is the worker's own decision, not an echo of the client's.
 */
function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const agent = new http.Agent({ keepAlive: true });
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          agent.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      })
      .on('error', reject);
  });
}

async function requestsServed(d: Drover): Promise<number> {
  const text = await (await fetch(d.controlUrl('/metrics'))).text();
  return total(parseMetrics(text), 'http_requests_total', { method: 'GET', status_code: '200' });
}

const started: Drover[] = [];
after(async () => {
  await Promise.all(started.map((d) => d.stop()));
});

/** Fixture, the `kind` its /ping answers, the kind drover takes it for, checks of its own. */
const kinds: [string, string, string, ((d: Drover) => Promise<void>)?][] = [
  ['express.js', 'express', 'express'],
  ['express-factory.js', 'express-factory', 'express'],
  ['express-async-factory.mjs', 'express-async-factory', 'express'],
  ['listener.js', 'listener', 'listener'],
  ['named-listener.mjs', 'listener', 'listener', async (d) => assert.equal((await get(d.url('/ping'))).headers['x-wrapped'], '1')],
  ['koa.js', 'koa', 'listener'],
  ['fastify.js', 'fastify', 'fastify', async (d) => {
    const r = await getJson(d.url('/echo'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.deepEqual(r.body, { got: { a: 1 } });
  }],
  ['fastify-factory.mjs', 'fastify-factory', 'fastify'],
  ['hono.mjs', 'hono', 'fetch', async (d) => {
    assert.deepEqual((await getJson(d.url('/env'))).body, { remote: '127.0.0.1' });
    const r = await getJson(d.url('/echo'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.deepEqual(r.body, { got: { a: 1 } });
  }],
  ['hono-node-server.mjs', 'hono-node-server', 'listener'],
  ['fetch.mjs', 'fetch', 'fetch', async (d) => {
    const res = await fetch(d.url('/upload'), { method: 'POST', body: Buffer.alloc(1 << 20, 1) });
    assert.equal(res.status, 201);
    assert.equal(await res.text(), '/upload got 1048576 bytes');
    assert.deepEqual(res.headers.getSetCookie(), ['a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'b=2']);
  }],
  ['nest.mjs', 'nest', 'express'],
  ['esm-tla/app.js', 'esm-tla', 'listener'],
];

describe('every kind of app is served through drover', () => {
  for (const [file, kind, appKind, extra] of kinds) {
    it(`${file}: served as ${appKind}, counted by drover's metrics, drained with Connection: close`, async () => {
      const d = await startDrover({ app: path.join(APPS, file), args: ['--workers', '1', '--drain-idle-grace', '100ms'] });
      started.push(d);
      assert.equal((await d.waitFor((l) => l.msg === 'listening' && l.role === 'worker')).appKind, appKind, 'the worker logs the kind');
      const r = await get(d.url('/ping'));
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as { kind: string }).kind, kind);
      assert.equal(r.headers.connection, 'keep-alive', 'before the drain, connections stay open');
      await extra?.(d);
      assert.ok((await requestsServed(d)) >= 1, 'drover recorded the request (its outer handler ran)');

      const slow = get(d.url('/slow'));
      await d.until(async () => (await d.status()).workers[0]?.inFlight === 1, 'the slow request is in flight');
      d.child.kill('SIGTERM');
      const answer = await slow;
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.connection, 'close', 'the in-flight response carries Connection: close');
      assert.equal((await d.exited).code, 0);
      assert.ok(!d.lines.some((l) => /hook threw/.test(l.msg)), d.tail());
    });
  }

  it('a Fastify instance is closed during drain (its onClose hooks run)', async () => {
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'drover-fastify-')), 'close.log');
    const d = await startDrover({ app: path.join(APPS, 'fastify.js'), args: ['--workers', '1'], env: { FASTIFY_CLOSE_LOG: log } });
    started.push(d);
    const pid = (await getJson<{ pid: number }>(d.url('/ping'))).body.pid;
    assert.equal((await d.stop()).code, 0);
    assert.equal(fs.readFileSync(log, 'utf8'), `closed ${pid}\n`);
  });

  it('an export drover cannot serve: exit 3, naming what it is, what drover serves and the likely fix', async () => {
    const d = await startDrover({ app: path.join(APPS, 'koa-app.js'), args: ['--workers', '1'], ready: false });
    assert.equal((await d.exited).code, 3);
    const fatal = d.lines.find((l) => l.msg === 'the app cannot be loaded; stopping instead of respawning');
    assert.ok(fatal, d.tail());
    const error = String(fatal.error);
    assert.match(error, /koa-app\.js: its default export is an Application object with keys \[/);
    assert.match(error, /drover serves an Express app, a Fastify instance, a request listener/);
    assert.match(error, /It looks like a Koa application: export `app\.callback\(\)` instead\./);
    assert.equal(d.count('worker spawned'), 1, 'no respawn');
  });
});

describe('TypeScript entries run through the app\'s tsx', () => {
  for (const [file, kind] of [['ts-app.ts', 'ts'], ['ts-esm.mts', 'mts'], ['ts-cjs.cts', 'cts']] as const) {
    it(`${file} is served`, async () => {
      const d = await startDrover({ app: path.join(APPS, file), args: ['--workers', '1', '--drain-idle-grace', '100ms'] });
      started.push(d);
      const r = await getJson<{ kind: string }>(d.url('/ping'));
      assert.equal(r.status, 200);
      assert.equal(r.body.kind, kind);
      assert.equal((await d.stop()).code, 0);
    });
  }

  it("a stalled worker's stack points at the line of the .ts file", async () => {
    const source = path.join(APPS, 'ts-app.ts');
    const line = fs.readFileSync(source, 'utf8').split('\n').findIndex((l) => l.includes('BUSY-LOOP')) + 1;
    const timeoutMs = 1500;
    const d = await startDrover({ app: source, args: ['--workers', '1', '--worker-timeout', `${timeoutMs}ms`, '--kill-grace', '500ms'] });
    started.push(d);
    const mark = d.lines.length;
    // Not awaited: it holds the worker's loop until the worker is killed.
    const blocked = fetch(d.url('/block?ms=60000')).then(
      (r) => r.status,
      () => 'connection closed',
    );
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.reason === 'stalled', timeoutMs + 5000, mark);
    assert.ok(exited);
    const stall = d.lines.slice(mark).find((l) => typeof l.msg === 'string' && l.msg.startsWith('worker stalled'));
    assert.ok(stall && Array.isArray(stall.stack), `stack captured: ${JSON.stringify(stall)}`);
    assert.match((stall.stack as string[])[0]!, new RegExp(`apps[/\\\\]ts-app\\.ts:${line}:\\d+\\)$`), JSON.stringify(stall.stack));
    assert.equal(await blocked, 'connection closed');
    await d.stop();
  });

  it('a .ts entry where tsx cannot be found: exit 2 naming the fix', async () => {
    // Outside the repo, so no node_modules above it holds tsx; NODE_PATH cleared for the same reason.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-no-tsx-'));
    const app = path.join(dir, 'app.ts');
    fs.writeFileSync(app, "export default (_req: unknown, res: { end(s: string): void }) => res.end('ts');\n");
    const out = await run(process.execPath, [BIN, 'start', app, ...startArgs, '--workers', '1'], { env: { ...process.env, NODE_PATH: '' } });
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /app\.ts is TypeScript; drover runs it through tsx, which cannot be found from /);
    assert.match(out.stderr, /npm install --save-dev tsx/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
