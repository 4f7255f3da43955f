import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, FIXTURES, run, startDrover, type Drover, type LogLine } from '../../bench/lib/drover';
import { send } from '../../bench/lib/load';
import { getJson, sendMany } from '../helpers/http';

describe('zero-downtime rolling reload', () => {
  const started: Drover[] = [];
  after(async () => {
    await Promise.all(started.map((d) => d.stop()));
  });

  it('SIGHUP under load: zero failed requests, every pid changed, generation incremented', async () => {
    const d = await startDrover({ args: ['--workers', '2'] });
    started.push(d);
    const before = await d.status();
    assert.equal(before.drover.generation, 1);
    const mark = d.lines.length;

    // Load across all three client kinds, running from before the reload until after it.
    let release!: () => void;
    const stop = new Promise<void>((r) => (release = r));
    const load = sendMany(d.url('/ping'), stop, { keepAlive: 4, fresh: 2, fetch: 2 });
    // Some traffic first, so keep-alive connections exist on the old workers.
    await d.until(async () => (await d.status()).workers.every((w) => (w.requests ?? 0) > 50), 'the old workers served traffic');
    d.child.kill('SIGHUP');
    await d.waitForMsg('rolling reload complete', 20_000, mark);
    // Keep loading until the old workers have fully drained and exited.
    await d.until(async () => {
      const s = await d.status();
      return s.workers.length === 2 && s.workers.every((w) => w.phase === 'listening' && w.generation === 2);
    }, 'only new-generation workers remain');
    const afterStatus = await d.status();
    // And a little traffic on the new generation only.
    await d.until(async () => (await d.status()).workers.every((w) => (w.requests ?? 0) > 20), 'the new workers served traffic');
    release();
    const r = await load;

    assert.equal(r.failed, 0, `failed requests: ${JSON.stringify(r.statuses)}`);
    assert.ok(r.ok > 500, `load was sustained (${r.ok} requests)`);
    assert.equal(afterStatus.drover.generation, 2);
    const oldPids = new Set(before.workers.map((w) => w.pid));
    assert.ok(afterStatus.workers.every((w) => !oldPids.has(w.pid)), 'every worker pid changed');
    assert.equal(d.lines.slice(mark).filter((l) => l.msg === 'worker exited' && l.reason === 'reload').length, 2);
    await d.stop();
  });

  it('the next step starts while the old worker drains idle keep-alive clients, beside at most one drain (ADR 0022)', async () => {
    const d = await startDrover({ app: path.join(FIXTURES, 'reliability-app.js'), args: ['--workers', '3', '--drain-idle-grace', '3s'] });
    started.push(d);
    // An idle keep-alive socket on every old worker: each drain then lasts the 3 s grace.
    const agents: http.Agent[] = [];
    const pids = new Set<number>();
    for (let i = 0; i < 30 && pids.size < 3; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      const a = await send({ url: d.url('/ping') }, { agent, readBody: true });
      assert.equal(a.status, 200);
      pids.add(a.pid!);
    }
    assert.equal(pids.size, 3, 'an idle keep-alive socket on each worker');
    const mark = d.lines.length;
    d.child.kill('SIGHUP');
    await d.waitForMsg('rolling reload complete', 30_000, mark);
    for (const agent of agents) agent.destroy();
    const log = d.lines.slice(mark);
    const at = (pred: (l: LogLine) => boolean, what: string): number => {
      const i = log.findIndex(pred);
      assert.ok(i >= 0, `${what} is in the log`);
      return i;
    };
    const steps = log.flatMap((l, i) => (l.msg === 'reload: replacing worker' ? [{ i, pid: l.workerPid }] : []));
    assert.equal(steps.length, 3);
    const [first, second, third] = steps as [{ i: number; pid: unknown }, { i: number; pid: unknown }, { i: number; pid: unknown }];
    const exitOf = (s: { pid: unknown }) => at((l) => l.msg === 'worker exited' && l.workerPid === s.pid, `the exit of ${String(s.pid)}`);
    const drainOf = (s: { pid: unknown }) => at((l) => l.msg === 'worker draining' && l.workerPid === s.pid, `the drain of ${String(s.pid)}`);
    assert.ok(second.i < exitOf(first), 'the second step started while the first old worker still drained');
    assert.ok(drainOf(second) < exitOf(first), 'two old workers drained at once');
    assert.ok(third.i > exitOf(first), 'the third step waited until one of the two drains ended');
    const complete = at((l) => l.msg === 'rolling reload complete', 'the completion');
    assert.ok(steps.every((s) => exitOf(s) < complete), 'the reload completes once every old worker has left');
    await d.stop();
  });

  it('`drover reload --wait` with a token uses POST /reload; a wrong token gets 401', async () => {
    const d = await startDrover({ args: ['--workers', '1', '--control-token', 's3cret'] });
    started.push(d);
    const wrong = await getJson(d.controlUrl('/reload'), { method: 'POST', headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const out = await run(process.execPath, [BIN, 'reload', '--wait', '--control-port', String(d.controlPort)], {
      env: { ...process.env, DROVER_CONTROL_TOKEN: 's3cret' },
    });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /reload complete: generation 2/);
    assert.equal((await d.status()).drover.generation, 2);
    await d.stop();
  });

  it('without a token POST /reload is refused, and `drover reload` signals the primary instead', async () => {
    const d = await startDrover({ args: ['--workers', '1'] });
    started.push(d);
    const refused = await getJson<{ error: string }>(d.controlUrl('/reload'), { method: 'POST' });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /disabled/);
    const out = await run(process.execPath, [BIN, 'reload', '--wait', '--control-port', String(d.controlPort)]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await d.status()).drover.generation, 2);
    await d.stop();
  });

  it('a new generation that fails to boot aborts the reload; the old workers keep serving', async () => {
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'drover-test-')), 'broken');
    const d = await startDrover({ app: path.join(FIXTURES, 'fails-when-marked.js'), args: ['--workers', '2'], env: { FAIL_MARKER: marker } });
    started.push(d);
    const before = await d.status();
    const mark = d.lines.length;
    fs.writeFileSync(marker, 'the next release is broken');
    const out = await run(process.execPath, [BIN, 'reload', '--wait', '--control-port', String(d.controlPort)]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /reload aborted/);
    const aborted = await d.waitForMsg('reload aborted; the previous generation keeps serving', 5000, mark);
    assert.match(String(aborted.why), /new release is broken/);
    const st = await d.status();
    assert.deepEqual(st.workers.map((w) => w.pid).sort(), before.workers.map((w) => w.pid).sort(), 'the old workers are still the ones serving');
    assert.ok(st.workers.every((w) => w.phase === 'listening'));
    assert.equal((await getJson(d.url('/ping'))).status, 200);
    assert.equal(d.exit, undefined, 'drover is still running');
    await d.stop();
  });
});
