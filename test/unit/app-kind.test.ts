/**
 * The listener-vs-factory rule (ADR 0015) as a table over plain values and real framework
 * objects, what a refusal says, and the fetch adapter over a real socket in this process.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import express from 'express';
import fastify from 'fastify';
import Koa from 'koa';
import { DroverError } from '../../src/errors';
import { fetchListener, serveModule } from '../../src/worker/adapters';
import { describeValue, kindOf, moduleKind } from '../../src/worker/app-kind';
import { loadApp } from '../../src/worker/load-app';

const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'test', 'fixtures');
// hono's one `types` entry is ESM-only, which a CommonJS test cannot import by name; its
// require() build is what this process loads anyway.
const { Hono } = require('hono') as { Hono: new () => { fetch: (request: Request) => unknown } };

describe('kindOf: what an exported value is taken for', () => {
  const koa = new Koa();
  const rows: [string, unknown, string][] = [
    ['an Express app', express(), 'express'],
    ['a Fastify instance', fastify(), 'fastify'],
    ['a Hono app (an object with fetch)', new Hono(), 'fetch'],
    ['an object with a fetch method', { fetch: () => new Response('x') }, 'fetch'],
    ['a function declaring (req, res)', (_req: unknown, _res: unknown) => undefined, 'listener'],
    ['a connect-style (req, res, next)', function app(_req: unknown, _res: unknown, _next: unknown) {}, 'listener'],
    ["Koa's callback()", koa.callback(), 'listener'],
    ['a function declaring no parameters', () => express(), 'factory'],
    ['an async function declaring none', async () => express(), 'factory'],
    ['a function declaring one (an options object)', (_opts: unknown) => express(), 'factory'],
    // The two shapes arity cannot see: hence the `listener` export.
    ['a rest-parameter wrapper (...args)', (..._args: unknown[]) => undefined, 'factory'],
    ['defaults hide parameters (req = x, res)', (_req: unknown = 1, _res?: unknown) => undefined, 'factory'],
    ['an object without fetch', { port: 3000 }, 'unservable'],
    ['a Koa application object', koa, 'unservable'],
    ['a Response', new Response('x'), 'unservable'],
    ['a number', 3000, 'unservable'],
    ['null', null, 'unservable'],
    ['undefined', undefined, 'unservable'],
  ];
  for (const [what, value, kind] of rows) it(`${what} → ${kind}`, () => assert.equal(kindOf(value).kind, kind));

  it('hints name the fix for framework objects exported by mistake', () => {
    const hint = (x: unknown) => {
      const k = kindOf(x);
      return k.kind === 'unservable' ? k.hint : undefined;
    };
    assert.match(hint(koa)!, /export `app\.callback\(\)`/);
    assert.match(hint({ getHttpAdapter() {}, init() {} })!, /NestJS.*app\.getHttpAdapter\(\)\.getInstance\(\)/);
    assert.match(hint(new Response('x'))!, /export it as `fetch`/);
    assert.equal(hint({ port: 3000 }), undefined);
  });

  it('an object fetch method is called on its object', async () => {
    const obj = { greeting: 'hi', fetch(this: { greeting: string }) { return new Response(this.greeting); } };
    const k = kindOf(obj);
    assert.equal(k.kind, 'fetch');
    if (k.kind !== 'fetch') return;
    const res = (await k.fetch(new Request('http://x/'), {} as never)) as Response;
    assert.equal(await res.text(), 'hi');
  });
});

describe('moduleKind: named exports state the kind, else the default export decides', () => {
  const zeroArity = () => undefined;
  it('`listener` wins whatever its arity, and over a default export', () => {
    const r = moduleKind({ listener: zeroArity, default: express() });
    assert.equal(r.kind.kind, 'listener');
    assert.equal(r.what, 'its `listener` export');
  });
  it('`fetch` is a fetch handler, called with the module as `this`', () => {
    const mod = { fetch(this: unknown) { return this; } };
    const r = moduleKind(mod);
    assert.equal(r.kind.kind, 'fetch');
    if (r.kind.kind === 'fetch') assert.equal(r.kind.fetch(new Request('http://x/'), {} as never), mod);
  });
  it('an ESM default or transpiled exports.default, else module.exports itself', () => {
    assert.equal(moduleKind({ default: express(), ready: zeroArity }).kind.kind, 'express');
    assert.equal(moduleKind(express() as unknown as Record<string, unknown>).kind.kind, 'express');
    assert.equal(moduleKind({ port: 3000 }).what, 'its default export');
  });
  it('an ESM module without a default export is named as such', async () => {
    const source: string = 'data:text/javascript,export const app = 1;';
    const ns = (await import(source)) as Record<string, unknown>;
    await assert.rejects(serveModule('app.mjs', ns), /^DroverError: app\.mjs: it has no default export, and its namespace is an object with keys \[app\]\. drover serves/);
  });
  it('a named export that is not a function is ignored', () => {
    assert.equal(moduleKind({ listener: 'no', default: express() }).kind.kind, 'express');
  });
});

describe('describeValue names what was exported', () => {
  it('functions by name and arity, objects by constructor and keys, primitives by value', () => {
    assert.equal(describeValue(function createApp(_a: unknown) {}), 'function createApp declaring 1 parameter');
    assert.equal(describeValue(Object.assign(() => undefined, {})), 'an anonymous function declaring 0 parameters');
    assert.equal(describeValue({ port: 3000 }), 'an object with keys [port]');
    assert.match(describeValue(new Koa()), /^an Application object with keys \[/);
    assert.equal(describeValue(3000), 'a number (3000)');
    assert.equal(describeValue(undefined), 'undefined');
  });
});

describe('serveModule: factories, refusals and Fastify', () => {
  const refused = async (mod: Record<string, unknown>, message: RegExp) => {
    await assert.rejects(serveModule('app.js', mod), (err: unknown) => {
      assert.ok(err instanceof DroverError);
      assert.equal(err.exitCode, 3);
      assert.equal(err.code, 'DROVER_ERR_APP_LOAD');
      assert.match(err.message, message);
      return true;
    });
  };

  it('an unservable default export: what it is, then what drover serves', () =>
    refused({ port: 3000 }, /^app\.js: its default export is an object with keys \[port\]\. drover serves an Express app, a Fastify instance/));

  it('a factory is called once and its result served; a factory returning a factory is refused', async () => {
    let calls = 0;
    const served = await serveModule('app.js', { default: async () => (calls++, (_req: unknown, _res: unknown) => undefined) });
    assert.equal(served.kind, 'listener');
    assert.equal(calls, 1);
    await refused({ default: () => () => express() }, /is a factory \(an anonymous function declaring 0 parameters\) and returned an anonymous function declaring 0 parameters, another function that is not a request listener/);
  });

  it('a one-parameter function that throws when called with none: its error, plus the fetch hint', async () => {
    const app = new Hono();
    await assert.rejects(serveModule('app.js', { default: app.fetch }), /: Cannot read properties of undefined \(reading 'method'\) \(drover called its default export, function fetch declaring 1 parameter, as a factory with no arguments; if it is a fetch handler, export it as `fetch`\)$/);
  });

  it('a Fastify instance is booted (ready) and closed by drover, and is not a source of hooks', async () => {
    const app = fastify();
    let plugin = false;
    void app.register(async () => void (plugin = true));
    const served = await serveModule('app.js', { default: app });
    assert.equal(served.kind, 'fastify');
    assert.ok(plugin, 'plugins loaded before drover serves it');
    assert.equal(served.framework, app);
    await served.close?.();
  });

  it('loadApp: an exported Fastify instance brings no ready hook of its own, and drover closes it', async () => {
    const loaded = await loadApp(path.join(FIXTURES, 'apps', 'fastify.js'));
    assert.equal(loaded.kind, 'fastify');
    assert.equal(loaded.hooks.ready, undefined, "Fastify's own ready() is not the module's hook");
    assert.equal(typeof loaded.hooks.shutdown, 'function');
    await loaded.hooks.shutdown?.();
  });
});

async function serve(listener: http.RequestListener): Promise<{ base: string; server: http.Server }> {
  const server = http.createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('fetchListener: a fetch handler on a Node server', () => {
  it('request line, headers and a streamed body in; status, headers, cookies and a streamed body out', async () => {
    const { base, server } = await serve(
      fetchListener(async (request) => {
        const size = (await request.arrayBuffer()).byteLength;
        const headers = new Headers({ 'x-url': request.url, 'x-seen': request.headers.get('x-test') ?? '' });
        headers.append('set-cookie', 'a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT');
        headers.append('set-cookie', 'b=2');
        const body = new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode(`${request.method} `));
            c.enqueue(new TextEncoder().encode(`${size}`));
            c.close();
          },
        });
        return new Response(body, { status: 201, statusText: 'Made', headers });
      }),
    );
    const res = await fetch(`${base}/a?b=1`, { method: 'PUT', headers: { 'x-test': 'yes' }, body: Buffer.alloc(300_000) });
    assert.equal(res.status, 201);
    assert.equal(res.statusText, 'Made');
    assert.equal(await res.text(), 'PUT 300000');
    assert.equal(res.headers.get('x-url'), `${base}/a?b=1`);
    assert.equal(res.headers.get('x-seen'), 'yes');
    assert.deepEqual(res.headers.getSetCookie(), ['a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'b=2']);
    server.close();
  });

  it('a request-target of //other/x stays a path on this host', async () => {
    const { base, server } = await serve(fetchListener((request) => new Response(request.url)));
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`${base}//other.example/x`, { agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    assert.equal(body, `${base}//other.example/x`);
    server.close();
  });

  it('a handler that throws or returns no Response: 500', async () => {
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (e: unknown) => errors.push(e);
    try {
      const { base, server } = await serve(
        fetchListener((request) => {
          if (request.url.endsWith('/throw')) throw new Error('boom');
          return 'not a response';
        }),
      );
      assert.equal((await fetch(`${base}/throw`)).status, 500);
      assert.equal((await fetch(`${base}/string`)).status, 500);
      assert.match(String(errors[1]), /returned a string \(not a response\), not a Response/);
      server.close();
    } finally {
      console.error = original;
    }
  });

  it('a body the handler ignores, or reads in part, does not stall the keep-alive connection', { timeout: 10_000 }, async () => {
    for (const reads of [0, 1]) {
      const { base, server } = await serve(
        fetchListener(async (request) => {
          if (reads && request.body) await request.body.getReader().read();
          return new Response('ok');
        }),
      );
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const send = (method: string, body?: Buffer) =>
        new Promise<number>((resolve, reject) => {
          const req = http.request(`${base}/`, { method, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end(body);
        });
      // One connection: each request waits for the previous body to be off the wire.
      assert.deepEqual([await send('POST', Buffer.alloc(4 << 20)), await send('POST', Buffer.alloc(100)), await send('GET')], [200, 200, 200]);
      agent.destroy();
      server.close();
    }
  });

  it("the Request's signal aborts when the client goes away", async () => {
    let onAbort: () => void = () => undefined;
    const aborted = new Promise<void>((r) => (onAbort = r));
    let onArrived: () => void = () => undefined;
    const arrived = new Promise<void>((r) => (onArrived = r));
    const { base, server } = await serve(
      fetchListener((request) => {
        request.signal.addEventListener('abort', onAbort);
        onArrived();
        return new Promise<Response>(() => undefined); // never answers
      }),
    );
    const req = http.get(`${base}/wait`, { agent: false });
    req.on('error', () => undefined);
    await arrived;
    req.destroy();
    await aborted;
    server.closeAllConnections();
    server.close();
  });
});
