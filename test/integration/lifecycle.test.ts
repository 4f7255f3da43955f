import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, ROOT, run, startDrover, type Drover, type LogLine } from '../../bench/lib/drover';
import { alive } from '../helpers/proc';
import { getJson } from '../helpers/http';
import type { Status } from '../../src/primary/control-server';
import type { BlockingRoute } from '../../src/protocol';

describe('supervisor lifecycle', () => {
  const started: Drover[] = [];
  after(async () => {
    await Promise.all(started.map((d) => d.stop()));
  });

  it('N workers serve /ping and `drover status` lists N listening workers', async () => {
    const d = await startDrover({ args: ['--workers', '3'] });
    started.push(d);
    const pids = new Set<number>();
    for (let i = 0; i < 30; i++) {
      // A new connection each time: a keep-alive connection stays with the worker it was handed to.
      const r = await getJson<{ pid: number }>(d.url('/ping'), { headers: { connection: 'close' } });
      assert.equal(r.status, 200);
      pids.add(r.body.pid);
    }
    assert.equal(pids.size, 3, 'every worker served some of 30 sequential requests');

    const out = await run(process.execPath, [BIN, 'status', '--control-port', String(d.controlPort)]);
    assert.equal(out.code, 0, out.stderr);
    const rows = out.stdout.split('\n').filter((l) => /^\d+\s+\d+\s+listening\b/.test(l));
    assert.equal(rows.length, 3, out.stdout);
    assert.match(out.stdout, /workers 3\/3 listening/);

    const json = await run(process.execPath, [BIN, 'status', '--json', '--control-port', String(d.controlPort)]);
    const st = JSON.parse(json.stdout) as Status;
    assert.deepEqual(new Set(st.workers.map((w) => w.pid)), pids);
    await d.stop();
  });

  it('a route that blocks the loop is named, with where, in /status and by `drover status`; /ping is not', async (t) => {
    const d = await startDrover({ args: ['--workers', '1'] });
    started.push(d);
    const mark = d.lines.length;
    for (let i = 0; i < 3; i++) assert.equal((await getJson(d.url('/block?ms=250'))).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await getJson(d.url('/ping'))).status, 200);
    // drover:blocks arrives at most once a second after a block: wait for the list with all three.
    let blocks: BlockingRoute[] = [];
    await d.until(async () => {
      blocks = (await d.status()).workers[0]!.blocks;
      return blocks.some((b) => b.route === '/block' && b.count === 3);
    }, '/status lists 3 blocks of /block', 5000);
    const b = blocks.find((x) => x.route === '/block')!;
    assert.ok(b.seconds >= 0.7 && b.seconds < 3, `blocked seconds ${b.seconds}`);
    assert.ok(b.maxMs >= 240 && b.maxMs < 1000, `longest block ${b.maxMs} ms`);
    assert.ok(!blocks.some((x) => x.route === '/ping'), `/ping blocks nothing: ${JSON.stringify(blocks)}`);
    // The first block of a route gets a stack: the busy loop in the demo's TypeScript.
    assert.ok(b.stack && b.stack.length > 0, `a stack for /block: ${JSON.stringify(b)}`);
    assert.ok(b.stack.some((f) => /src[/\\]demo[/\\]app\.ts:\d+:\d+\)$/.test(f)), b.stack.join('\n'));
    const logged = await d.waitFor((l) => l.msg === 'event loop blocked' && l.route === '/block' && Array.isArray(l.stack), 5000, mark);
    assert.ok((logged.blockedMs as number) >= 240, JSON.stringify(logged));

    const out = await run(process.execPath, [BIN, 'status', '--control-port', String(d.controlPort)], { cwd: ROOT });
    assert.equal(out.code, 0, out.stderr);
    const row = out.stdout.split('\n').find((l) => /^0\s+\d+\s+\/block\s/.test(l));
    assert.ok(row, `drover status lists /block under the workers table:\n${out.stdout}`);
    t.diagnostic(row);
    assert.match(row, /^0\s+\d+\s+\/block\s+3\s+\d+\.\d+s\s+\d+ms\s+.+ \(src\/demo\/app\.ts:\d+\)$/, 'count, seconds, max, and where: the demo line');
    assert.doesNotMatch(out.stdout, /\/ping/);
    await d.stop();
  });

  it('a SIGKILLed worker is replaced and the total stays N', async () => {
    const d = await startDrover({ args: ['--workers', '2'] });
    started.push(d);
    const before = await d.status();
    const victim = before.workers[0]!;
    const mark = d.lines.length;
    process.kill(victim.pid, 'SIGKILL');
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === victim.pid, 5000, mark);
    assert.equal(exited.reason, 'crash');
    assert.equal(exited.signal, 'SIGKILL');
    const replaced = await d.waitFor((l) => l.msg === 'worker listening' && l.worker === victim.slot, 5000, mark);
    assert.notEqual(replaced.workerPid, victim.pid);
    const after = await d.status();
    assert.equal(after.workers.length, 2);
    assert.ok(after.workers.every((w) => w.phase === 'listening'));
    assert.ok(!after.workers.some((w) => w.pid === victim.pid));
    assert.equal((await getJson(d.url('/ping'))).status, 200);
    await d.stop();
  });

  it('a worker sent SIGTERM on its own is replaced first, then drained (no downtime)', async () => {
    const d = await startDrover({ args: ['--workers', '1', '--drain-idle-grace', '100ms'] });
    started.push(d);
    const [victim] = (await d.status()).workers;
    const mark = d.lines.length;
    process.kill(victim!.pid, 'SIGTERM');
    await d.waitForMsg('worker was signalled; replacing it', 5000, mark);
    const replacement = await d.waitForMsg('worker listening', 5000, mark);
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === victim!.pid, 5000, mark);
    assert.equal(exited.reason, 'recycle');
    assert.equal(exited.code, 0, 'it drained and exited cleanly');
    assert.ok(d.lines.indexOf(replacement) < d.lines.indexOf(exited), 'the replacement listened before the old worker left');
    assert.equal((await getJson(d.url('/ping'))).status, 200);
    await d.stop();
  });

  it('a worker stuck in a busy loop is detected, its stack logged, and replaced while probes answer', async () => {
    const timeoutMs = 1500;
    const d = await startDrover({ args: ['--workers', '2', '--worker-timeout', `${timeoutMs}ms`, '--kill-grace', '500ms'] });
    started.push(d);
    const mark = d.lines.length;
    const probeClient = run(process.execPath, [
      path.join(ROOT, 'dist', 'test', 'helpers', 'probe-client.js'),
      '4000',
      d.controlUrl('/livez'),
      d.controlUrl('/readyz'),
      d.url('/ping'),
    ]);
    // Not awaited: this request holds its worker's loop for a minute (until the worker is killed).
    const blocked = fetch(d.url('/block?ms=60000')).then(
      (r) => r.status,
      () => 'connection closed',
    );
    const stalled = await d.waitForMsg('worker exited', timeoutMs + 5000, mark).catch(() => undefined);
    const stall = d.lines.slice(mark).find((l) => typeof l.msg === 'string' && l.msg.startsWith('worker stalled'));
    assert.ok(stall, `a stall was logged\n${d.tail()}`);
    assert.ok(stalled, 'the stalled worker exited');
    assert.equal(stalled.reason, 'stalled');
    assert.ok((stall.heartbeatAgeMs as number) >= timeoutMs);
    assert.ok(Array.isArray(stall.stack), `stack captured: ${JSON.stringify(stall)}`);
    // Source-mapped: the top frame is the busy loop's line in the TypeScript source.
    assert.match((stall.stack as string[])[0]!, /src[/\\]demo[/\\]app\.ts:\d+:\d+\)$/, 'the stack points at the demo route in TypeScript');
    await d.waitFor((l) => l.msg === 'worker listening' && l.worker === stall.worker, 5000, mark);
    assert.equal(await blocked, 'connection closed');

    const probes = JSON.parse((await probeClient).stdout) as Record<string, { count: number; statuses: Record<string, number>; maxMs: number; errors: number }>;
    const livez = probes[d.controlUrl('/livez')]!;
    const readyz = probes[d.controlUrl('/readyz')]!;
    const ping = probes[d.url('/ping')]!;
    assert.equal(livez.errors, 0);
    assert.equal(livez.statuses['200'], livez.count, 'livez always 200');
    assert.ok(livez.maxMs < 1000, `livez answered within 1 s every time (max ${livez.maxMs.toFixed(1)} ms)`);
    assert.equal(readyz.statuses['200'], readyz.count, 'readyz stays 200: the other worker is fresh');
    assert.ok(readyz.maxMs < 1000);
    assert.equal(ping.errors, 0, 'the other worker kept serving');
    assert.equal(ping.statuses['200'], ping.count);
    await d.stop();
  });

  /** Milliseconds between two log lines, by their own timestamps. */
  const between = (a: LogLine, b: LogLine) => Date.parse(String(b.time)) - Date.parse(String(a.time));
  const SIGKILLED = 'worker still running after --kill-grace; SIGKILL';

  it('a worker that never listens is sent SIGTERM at --boot-timeout and is gone at once, not after --kill-grace', async (t) => {
    // gated-boot.js boots until its gate file exists; this one never will. Its loop stays free,
    // so SIGTERM reaches it: a worker that is not listening exits on it.
    const gate = path.join(os.tmpdir(), `drover-no-such-gate-${process.pid}`);
    const d = await startDrover({ app: path.join(FIXTURES, 'gated-boot.js'), args: ['--workers', '1', '--boot-timeout', '1s', '--kill-grace', '10s'], env: { BOOT_GATE: gate }, ready: false });
    started.push(d);
    const killing = await d.waitForMsg('worker did not listen in time; killing it', 10_000);
    // Killed at boot is not a stall.
    const metrics = await (await fetch(d.controlUrl('/metrics'))).text();
    assert.match(metrics, /^drover_workers\{state="stalling"\} 0$/m);
    // Waits past the 10 s grace, so a worker that sits the grace out fails on the bound, not on a timeout.
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === killing.workerPid, 15_000);
    const ms = between(killing, exited);
    t.diagnostic(`gone ${ms} ms after the SIGTERM (code ${String(exited.code)}, signal ${String(exited.signal)})`);
    assert.equal(exited.reason, 'boot-timeout');
    assert.notEqual(exited.signal, 'SIGKILL');
    assert.ok(ms < 5000, `the worker left ${ms} ms after its boot timeout; --kill-grace is 10 s`);
    assert.ok(!d.lines.some((l) => l.msg === SIGKILLED && l.workerPid === killing.workerPid), d.tail());
    await d.stop();
  });

  it('a stalled worker is SIGKILLed once --kill-grace is over', async () => {
    const graceMs = 2000;
    const d = await startDrover({ args: ['--workers', '1', '--worker-timeout', '1s', '--kill-grace', `${graceMs}ms`] });
    started.push(d);
    const mark = d.lines.length;
    // Holds the worker's loop for a minute: SIGTERM cannot reach its handler.
    const blocked = fetch(d.url('/block?ms=60000')).catch(() => undefined);
    const stall = await d.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('worker stalled'), 10_000, mark);
    // Within the grace it is what the state says: stalling, and counted as such.
    const during = await d.status();
    assert.equal(during.workers.find((w) => w.pid === stall.workerPid)?.phase, 'stalling');
    const metrics = await (await fetch(d.controlUrl('/metrics'))).text();
    assert.match(metrics, /^drover_workers\{state="stalling"\} 1$/m);
    const killed = await d.waitFor((l) => l.msg === SIGKILLED && l.workerPid === stall.workerPid, graceMs + 5000, mark);
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === stall.workerPid, 5000, mark);
    assert.equal(exited.reason, 'stalled');
    assert.equal(exited.signal, 'SIGKILL');
    // Log times are whole milliseconds, and the timer may fire a tick late, never early.
    assert.ok(between(stall, killed) >= graceMs - 5, `SIGKILL ${between(stall, killed)} ms after the stall, grace ${graceMs} ms`);
    await d.waitFor((l) => l.msg === 'worker listening' && l.worker === stall.worker && l.workerPid !== stall.workerPid, 5000, mark);
    await blocked;
    await d.stop();
  });

  it('SIGTERM during a 2 s request: it completes with 200, then exit 0 and no process left', async () => {
    const d = await startDrover({ args: ['--workers', '2'] });
    started.push(d);
    const st = await d.status();
    const slow = getJson<{ waitedMs: number }>(d.url('/slow?ms=2000'));
    await d.until(async () => (await d.status()).workers.some((w) => w.inFlight === 1), 'the request is in flight');
    d.child.kill('SIGTERM');
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body.waitedMs, 2000);
    const exit = await d.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    for (const w of st.workers) assert.equal(alive(w.pid), false, `worker ${w.pid} is gone`);
    assert.equal(alive(d.pid), false);
  });

  /** GETs `url` on `agent`; resolves when the body ended, with the time it ended and the socket used. */
  const getOn = (agent: http.Agent, url: string, onHeaders?: () => void) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; socket: unknown; endedAt: number }>((resolve, reject) => {
      const req = http.get(url, { agent }, (res) => {
        onHeaders?.();
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, socket: req.socket, endedAt: performance.now() }));
      });
      req.on('error', reject);
    });
  const until = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));
  /** During drain, at `at`: a GET on `agent` is answered on the socket `prev` used, told to leave; then drover exits 0. */
  const reusedInDrain = async (d: Drover, agent: http.Agent, prev: { socket: unknown }, at: number, why: string) => {
    await until(at);
    const next = await getOn(agent, d.url('/ping'));
    assert.equal(next.status, 200);
    assert.equal(next.socket, prev.socket, why);
    assert.equal(next.headers.connection, 'close', 'the client is told to leave');
    assert.equal((await d.exited).code, 0);
    agent.destroy();
  };

  it('during drain, a request on an open keep-alive connection is answered with Connection: close', async () => {
    const d = await startDrover({ args: ['--workers', '1'] });
    started.push(d);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await getOn(agent, d.url('/ping'));
    assert.equal(first.headers.connection, 'keep-alive');
    const mark = d.lines.length;
    d.child.kill('SIGTERM');
    await d.waitFor((l) => l.msg === 'draining' && l.role === 'worker', 5000, mark);
    await reusedInDrain(d, agent, first, 0, 'the same keep-alive connection was reused');
  });

  // The keep-alive race (ADR 0021): a client may reuse an idle socket until 1 s before the timeout
  // the server advertised (undici's rule). Closing it earlier in a drain can meet a request on the
  // wire, which fails with a reset; so drain keeps it open that long and answers with Connection: close.
  it('during drain, an idle keep-alive socket stays open for the keep-alive timeout it was promised', async () => {
    const d = await startDrover({ args: ['--workers', '1'] });
    started.push(d);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await getOn(agent, d.url('/ping'));
    const hintS = Number(/timeout=(\d+)/.exec(String(first.headers['keep-alive']))?.[1]);
    assert.equal(hintS, 5, `the worker advertises its keep-alive timeout (${first.headers['keep-alive']})`);
    const mark = d.lines.length;
    d.child.kill('SIGTERM');
    await d.waitFor((l) => l.msg === 'draining' && l.role === 'worker', 5000, mark);
    await reusedInDrain(d, agent, first, first.endedAt + (hintS - 1) * 1000, 'the idle socket was still open 1 s before its advertised timeout');
  });

  it('during drain, a keep-alive response that was under way gets the full grace after it ends', async () => {
    const d = await startDrover({ app: path.join(FIXTURES, 'streaming-app.js'), args: ['--workers', '1', '--keep-alive-timeout', '2s'] });
    started.push(d);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const mark = d.lines.length;
    // Headers are out before the drain begins, so this response ends as keep-alive ~1.5 s into it.
    const streamed = await getOn(agent, d.url('/stream?ms=1500'), () => d.child.kill('SIGTERM'));
    await d.waitFor((l) => l.msg === 'draining' && l.role === 'worker', 5000, mark);
    assert.notEqual(streamed.headers.connection, 'close');
    // 2 s after the drain began its grace is over, but this socket idled only ~0.5 s of it.
    await reusedInDrain(d, agent, streamed, streamed.endedAt + 1000, 'the socket was kept for the grace after its response ended');
  });

  it('a SIGKILLed primary leaves no orphan: workers (even a blocked one) exit', async () => {
    const d = await startDrover({ args: ['--workers', '2'] });
    started.push(d);
    const st = await d.status();
    const blocked = fetch(d.url('/block?ms=60000')).catch(() => undefined);
    // A blocked worker stops beating: that is how we know the request is being served (late by
    // the interval its last beat announced: at the idle pace one beat a second is sent).
    await d.until(async () => (await d.status()).workers.some((w) => w.heartbeatAgeMs - (w.heartbeatReportMs ?? 0) > 300), 'a worker is blocked');
    process.kill(d.pid, 'SIGKILL');
    await d.exited;
    const deadline = Date.now() + 5000;
    const pids = st.workers.map((w) => w.pid);
    // Orphans are not our children: poll for their disappearance, bounded.
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(pids.filter(alive), [], 'no worker outlived the primary by 5 s');
    await blocked;
  });
});
