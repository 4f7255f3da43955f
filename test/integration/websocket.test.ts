/**
 * WebSockets through real drover (ADR 0016): the app's attach hook gets the worker's http.Server,
 * upgraded connections are counted in /status and /metrics, and a drain gives them the app's
 * shutdown hook, then the deadline, never an early reset.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { io as ioClient } from 'socket.io-client';
import WebSocket from 'ws';
import { FIXTURES, startDrover, type Drover, type WorkerStatus } from '../../bench/lib/drover';
import { getJson, sendMany } from '../helpers/http';
import { parseMetrics, total } from '../helpers/prom';

const WS_APP = path.join(FIXTURES, 'ws-app.js');
const SOCKETIO_APP = path.join(FIXTURES, 'socketio-app.js');

interface Closed {
  code: number;
  reason: string;
  at: number;
}

/** A `ws` client of the fixture: the hello tells which worker it landed on; messages queue up. */
class Client {
  readonly ws: WebSocket;
  readonly closed: Promise<Closed>;
  readonly errors: string[] = [];
  pid = 0;
  private readonly inbox: Record<string, unknown>[] = [];
  private wake: (() => void) | undefined;

  private constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      this.inbox.push(JSON.parse(String(data)) as Record<string, unknown>);
      this.wake?.();
    });
    // An 'error' before 'close' is what an abrupt reset looks like to a client.
    this.ws.on('error', (err: Error) => this.errors.push((err as NodeJS.ErrnoException).code ?? err.message));
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        resolve({ code, reason: String(reason), at: performance.now() });
        this.wake?.();
      });
    });
  }

  static async open(d: Drover, p = '/'): Promise<Client> {
    const c = new Client(`ws://127.0.0.1:${d.port}${p}`);
    c.pid = (await c.next()).hello as number;
    return c;
  }

  async next(timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`closed while waiting for a message (errors: ${this.errors.join(', ')})`);
      if (performance.now() > deadline) throw new Error('no message in time');
      await new Promise<void>((resolve) => {
        this.wake = () => resolve();
        setTimeout(() => resolve(), Math.max(0, deadline - performance.now())).unref();
      });
    }
    return this.inbox.shift()!;
  }

  async echo(text: string): Promise<Record<string, unknown>> {
    this.ws.send(text);
    return this.next();
  }
}

async function workers(d: Drover): Promise<WorkerStatus[]> {
  return (await d.status()).workers;
}

const upgradedTotal = (ws: WorkerStatus[]) => ws.reduce((a, w) => a + (w.upgraded ?? 0), 0);

describe('WebSockets', () => {
  const started: Drover[] = [];
  after(async () => {
    await Promise.all(started.map((d) => d.stop()));
  });

  it('ws through the attach hook: echo at --workers 2, clients on both workers, counted in /status and /metrics', async () => {
    const d = await startDrover({ app: WS_APP, args: ['--workers', '2'] });
    started.push(d);
    const clients = await Promise.all(Array.from({ length: 8 }, () => Client.open(d)));
    const pids = new Set(clients.map((c) => c.pid));
    assert.equal(pids.size, 2, 'the 8 clients landed on both workers');
    for (const [i, c] of clients.entries()) assert.deepEqual(await c.echo(`hi ${i}`), { pid: c.pid, echo: `hi ${i}` });

    // Counts travel with the heartbeat: wait for a beat that has all of them.
    await d.until(async () => upgradedTotal(await workers(d)) === 8, '/status counts 8 upgraded connections');
    const st = await workers(d);
    for (const w of st) {
      assert.equal(w.upgraded, clients.filter((c) => c.pid === w.pid).length, `worker ${w.pid}'s own clients`);
      assert.ok((w.connections ?? 0) >= (w.upgraded ?? 0), 'upgraded connections are counted in connections too');
    }
    const metrics = parseMetrics(await (await fetch(d.controlUrl('/metrics'))).text());
    assert.equal(total(metrics, 'drover_worker_upgraded_connections'), 8);

    // HTTP still reaches the app beside the WebSocket server.
    assert.equal((await getJson(d.url('/ping'))).status, 200);
    for (const c of clients) c.ws.close(1000);
    await Promise.all(clients.map((c) => c.closed));
    await d.until(async () => upgradedTotal(await workers(d)) === 0, 'closed WebSockets leave the count');
    assert.equal((await d.stop()).code, 0);
  });

  it('socket.io with the websocket transport only: echo, and counted', async () => {
    const d = await startDrover({ app: SOCKETIO_APP, args: ['--workers', '2'] });
    started.push(d);
    const sockets = Array.from({ length: 4 }, () =>
      ioClient(`http://127.0.0.1:${d.port}`, { transports: ['websocket'], reconnection: false, forceNew: true }),
    );
    try {
      await Promise.all(sockets.map((s) => new Promise<void>((resolve, reject) => s.once('connect', () => resolve()).once('connect_error', (err: Error) => reject(err)))));
      for (const [i, s] of sockets.entries()) {
        const r = (await s.timeout(5000).emitWithAck('echo', `hi ${i}`)) as { pid: number; echo: string };
        assert.equal(r.echo, `hi ${i}`);
      }
      await d.until(async () => upgradedTotal(await workers(d)) === 4, '/status counts 4 upgraded connections');
      // SIGTERM: the shutdown hook's io.close() disconnects the clients; drover exits cleanly.
      const disconnected = Promise.all(sockets.map((s) => new Promise<string>((resolve) => s.once('disconnect', resolve))));
      assert.equal((await d.stop()).code, 0);
      assert.equal((await disconnected).length, 4, 'every client saw its disconnect');
      assert.equal(d.count('drain deadline hit; connections closed'), 0, 'no worker needed the deadline');
    } finally {
      for (const s of sockets) s.close();
    }
  });

  it('without an attach hook an upgrade request is plain HTTP to the app (its 404), nothing hangs', async () => {
    const d = await startDrover({ args: ['--workers', '1'] });
    started.push(d);
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${d.port}/no-such-route`);
      ws.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.on('error', () => {}); // terminate() reports "closed before the connection was established"
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('the handshake succeeded without a WebSocket server')));
    });
    assert.equal(status, 404);
    assert.equal(upgradedTotal(await workers(d)), 0);
    assert.equal((await getJson(d.url('/ping'))).status, 200);
    await d.stop();
  });

  it('an attach hook that throws stops drover with the app-load exit code', async () => {
    const d = await startDrover({ app: WS_APP, args: ['--workers', '1'], env: { WS_ATTACH_THROW: '1' }, ready: false });
    started.push(d);
    const exit = await d.exited;
    assert.equal(exit.code, 3, d.tail());
    const fatal = d.lines.find((l) => l.msg === 'the app cannot be loaded; stopping instead of respawning');
    assert.match(String(fatal?.error), /attach failed on purpose/, d.tail());
  });

  it('SIGTERM: the shutdown hook closes open WebSockets with 1001, well before the deadline', async (t) => {
    const d = await startDrover({ app: WS_APP, args: ['--workers', '1', '--drain-timeout', '20s'], env: { WS_SHUTDOWN: 'close' } });
    started.push(d);
    const clients = await Promise.all([Client.open(d), Client.open(d)]);
    const sentAt = performance.now();
    d.child.kill('SIGTERM');
    for (const c of clients) {
      const closed = await c.closed;
      assert.equal(closed.code, 1001);
      assert.equal(closed.reason, 'drover drain');
      t.diagnostic(`closed ${Math.round(closed.at - sentAt)} ms after SIGTERM (drain timeout 20 s)`);
      assert.ok(closed.at - sentAt < 10_000, `closed ${Math.round(closed.at - sentAt)} ms after SIGTERM`);
      assert.deepEqual(c.errors, []);
    }
    assert.equal((await d.exited).code, 0);
    assert.equal(d.count('drain deadline hit; connections closed'), 0);
  });

  it('SIGTERM without a shutdown hook: a WebSocket outlives the idle-socket sweep and is closed at the deadline, not reset', async (t) => {
    const drainMs = 1500;
    const d = await startDrover({ app: WS_APP, args: ['--workers', '1', '--drain-timeout', `${drainMs}ms`, '--drain-idle-grace', '100ms'] });
    started.push(d);
    const c = await Client.open(d);
    // A slow request keeps the HTTP step of the drain busy past the idle grace, so the sweep of
    // idle sockets (closeIdleConnections) runs while the WebSocket is open.
    const slow = getJson(d.url('/slow?ms=700'));
    await d.until(async () => (await workers(d))[0]!.inFlight === 1, 'the slow request is in flight');
    const mark = d.lines.length;
    d.child.kill('SIGTERM');
    await d.waitFor((l) => l.msg === 'draining' && l.role === 'worker', 5000, mark);
    const drainingAt = performance.now();
    // Echo every 50 ms until the close: the last answer shows how long the socket stayed usable.
    let lastEchoAt = 0;
    while (c.ws.readyState === WebSocket.OPEN) {
      try {
        await c.echo('still there?');
        lastEchoAt = performance.now();
      } catch {
        break; // closed while waiting
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const closed = await c.closed;
    t.diagnostic(`last echo ${Math.round(lastEchoAt - drainingAt)} ms, close ${Math.round(closed.at - drainingAt)} ms (code ${closed.code}) into a ${drainMs} ms drain`);
    assert.equal((await slow).status, 200, 'the in-flight request finished');
    assert.ok(lastEchoAt - drainingAt > 1000, `echoed until ${Math.round(lastEchoAt - drainingAt)} ms into the drain (idle grace 100 ms)`);
    assert.ok(closed.at - drainingAt >= drainMs - 100, `closed ${Math.round(closed.at - drainingAt)} ms into a ${drainMs} ms drain`);
    assert.equal(closed.code, 1006, 'a TCP close without a close frame');
    assert.deepEqual(c.errors, [], 'no ECONNRESET');
    assert.equal((await d.exited).code, 0);
    const hit = await d.waitForMsg('drain deadline hit; connections closed', 1000, mark);
    assert.equal(hit.forced, 1);
  });

  it('rolling reload with WebSockets open and keep-alive HTTP flowing: zero failed requests, WebSockets closed by the hook', async (t) => {
    const d = await startDrover({ app: WS_APP, args: ['--workers', '2', '--drain-idle-grace', '1s'], env: { WS_SHUTDOWN: 'close' } });
    started.push(d);
    const clients = await Promise.all(Array.from({ length: 6 }, () => Client.open(d)));
    assert.equal(new Set(clients.map((c) => c.pid)).size, 2);
    const mark = d.lines.length;

    let release!: () => void;
    const stop = new Promise<void>((r) => (release = r));
    const load = sendMany(d.url('/ping'), stop, { keepAlive: 4, fresh: 2, fetch: 2 });
    await d.until(async () => (await workers(d)).every((w) => (w.requests ?? 0) > 50), 'the old workers served traffic');
    d.child.kill('SIGHUP');
    await d.waitForMsg('rolling reload complete', 30_000, mark);
    await d.until(async () => {
      const ws = await workers(d);
      return ws.length === 2 && ws.every((w) => w.phase === 'listening' && w.generation === 2);
    }, 'only new-generation workers remain', 20_000);
    await d.until(async () => (await workers(d)).every((w) => (w.requests ?? 0) > 20), 'the new workers served traffic');
    release();
    const r = await load;
    t.diagnostic(`${r.ok} HTTP requests, ${r.failed} failed, across the reload`);
    assert.equal(r.failed, 0, `failed requests: ${JSON.stringify(r.statuses)}`);

    for (const c of clients) {
      const closed = await c.closed;
      assert.equal(closed.code, 1001, "closed by the old worker's shutdown hook");
      assert.deepEqual(c.errors, []);
    }
    // A new client lands on the new generation and works.
    const fresh = await Client.open(d);
    assert.ok(!clients.some((c) => c.pid === fresh.pid));
    assert.deepEqual(await fresh.echo('new'), { pid: fresh.pid, echo: 'new' });
    fresh.ws.close();
    assert.equal(d.count('drain deadline hit; connections closed'), 0);
    await d.stop();
  });
});
