import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, startDrover, type Drover } from '../../bench/lib/drover';
import { alive } from '../helpers/proc';
import { getJson, sendMany } from '../helpers/http';
import { listeningPorts } from '../helpers/proc';

const tmp = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

describe('production fit', () => {
  const started: Drover[] = [];
  after(async () => {
    await Promise.all(started.map((d) => d.stop()));
  });

  it('SIGTERM with --shutdown-delay 2s: /readyz 503 at once, requests still served, then a clean drain', async (t) => {
    const d = await startDrover({ args: ['--workers', '2', '--shutdown-delay', '2s', '--drain-idle-grace', '200ms'] });
    started.push(d);
    assert.equal((await getJson(d.controlUrl('/readyz'))).status, 200);
    let release!: () => void;
    const stop = new Promise<void>((r) => (release = r));
    const load = sendMany(d.url('/ping'), stop, { keepAlive: 2, fresh: 1 });
    const signalledAt = performance.now();
    d.child.kill('SIGTERM');
    const mark = d.lines.length;
    // /readyz flips within 100 ms of the signal.
    let notReadyAfter = Infinity;
    while (performance.now() - signalledAt < 1000) {
      const r = await getJson(d.controlUrl('/readyz'));
      if (r.status === 503) {
        notReadyAfter = performance.now() - signalledAt;
        break;
      }
    }
    t.diagnostic(`/readyz was 503 ${notReadyAfter.toFixed(1)} ms after SIGTERM`);
    assert.ok(notReadyAfter < 100, `readyz turned 503 after ${notReadyAfter} ms`);
    assert.equal((await getJson(d.controlUrl('/livez'))).status, 200, 'still alive while shutting down');
    // During the delay, new requests (and new connections) are served.
    const during = await sendMany(d.url('/ping'), 20);
    assert.equal(during.ok, 20);
    assert.ok(performance.now() - signalledAt < 2000, 'those requests ran inside the delay');
    await d.waitForMsg('draining workers', 5000, mark);
    const drainingAt = performance.now() - signalledAt;
    t.diagnostic(`drain started ${drainingAt.toFixed(0)} ms after SIGTERM`);
    assert.ok(drainingAt >= 1900, 'the drain waited for the shutdown delay');
    const exit = await d.exited;
    release();
    const r = await load;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(r.ok > 50);
    t.diagnostic(`load during shutdown: ${r.ok} ok, ${r.failed} failed ${JSON.stringify(r.statuses)}`);
  });

  it('the default worker count follows a fake cgroup cpu.max', async () => {
    const root = tmp('drover-cgroup-');
    fs.writeFileSync(path.join(root, 'cpu.max'), '150000 100000\n');
    const d = await startDrover({ env: { DROVER_CGROUP_ROOT: root, WEB_CONCURRENCY: '', DROVER_WORKERS: '' } });
    started.push(d);
    const listening = d.lines.find((l) => l.msg === 'drover listening')!;
    assert.equal(listening.workers, 2);
    assert.equal(listening.workersSource, 'cgroup');
    assert.match(String(listening.workersDetail), /1\.5 CPUs/);
    const st = await d.status();
    assert.equal(st.drover.workersTarget, 2);
    assert.equal(st.drover.workersSource, 'cgroup');
    await d.stop();

    fs.writeFileSync(path.join(root, 'cpu.max'), 'max 100000\n');
    const d2 = await startDrover({ env: { DROVER_CGROUP_ROOT: root, WEB_CONCURRENCY: '', DROVER_WORKERS: '' } });
    started.push(d2);
    const l2 = d2.lines.find((l) => l.msg === 'drover listening')!;
    assert.equal(l2.workers, os.availableParallelism());
    assert.equal(l2.workersSource, 'cpus');
    await d2.stop();
  });

  it('ready and shutdown hooks: ready before traffic, shutdown once per worker on SIGTERM', async () => {
    const log = path.join(tmp('drover-hooks-'), 'hooks.log');
    const d = await startDrover({ app: path.join(FIXTURES, 'hooks.js'), args: ['--workers', '2', '--drain-idle-grace', '100ms'], env: { HOOK_LOG: log } });
    started.push(d);
    const st = await d.status();
    const r = await sendMany(d.url('/ping'), 10);
    assert.equal(r.ok, 10);
    const ping = await getJson<{ warmed: boolean }>(d.url('/ping'));
    assert.equal(ping.body.warmed, true, 'the ready hook finished before the worker took traffic');
    await d.stop();
    assert.equal(d.exit?.code, 0);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').sort();
    const pids = st.workers.map((w) => w.pid).sort();
    assert.deepEqual(lines, [...pids.map((p) => `ready ${p}`), ...pids.map((p) => `shutdown ${p}`)].sort());
  });

  it('a shutdown hook that hangs is cut off at the drain timeout and logged', async () => {
    const log = path.join(tmp('drover-hooks-'), 'hooks.log');
    const d = await startDrover({
      app: path.join(FIXTURES, 'hooks.js'),
      args: ['--workers', '1', '--drain-timeout', '1s', '--drain-idle-grace', '100ms'],
      env: { HOOK_LOG: log, HOOK_HANG: '1' },
    });
    started.push(d);
    const started_ = performance.now();
    await d.stop();
    assert.equal(d.exit?.code, 0);
    assert.ok(performance.now() - started_ < 5000, 'the hang did not hold shutdown');
    const cut = d.lines.find((l) => l.msg === 'app shutdown hook did not finish in time; exiting anyway');
    assert.ok(cut, d.tail());
    assert.equal(cut.worker, 0, 'logged with the worker id');
  });

  const apps: [string, string][] = [
    ['cjs-guard.js', 'cjs'],
    ['esm-app.mjs', 'esm'],
    ['esm-factory.mjs', 'esm-factory'],
    ['ts-transpiled.js', 'ts-transpiled'],
  ];
  for (const [file, kind] of apps) {
    it(`app compatibility: ${file} runs unchanged, with no stray listener`, async () => {
      const d = await startDrover({ app: path.join(FIXTURES, file), args: ['--workers', '1'], env: { STRAY_PORT: '0' } });
      started.push(d);
      const r = await getJson<{ kind: string; pid: number }>(d.url('/ping'));
      assert.equal(r.status, 200);
      assert.equal(r.body.kind, kind);
      const st = await d.status();
      const w = st.workers[0]!;
      assert.deepEqual(listeningPorts(w.pid), [w.privatePort], 'the worker listens only on its private port');
      const warned = d.lines.filter((l) => l.msg === 'the app called listen() itself; drover serves it on the app port and ignored that call');
      assert.equal(warned.length, kind === 'esm' ? 1 : 0);
      await d.stop();
    });
  }

  it('an exception in the primary drains the workers and exits 6; no worker outlives it', async () => {
    const d = await startDrover({ args: ['--workers', '2', '--drain-idle-grace', '100ms'], env: { DROVER_TEST_FAULT: 'primary-throw' } });
    started.push(d);
    const pids = d.lines.filter((l) => l.msg === 'worker spawned').map((l) => l.workerPid as number);
    const exit = await d.exited;
    assert.equal(exit.code, 6);
    assert.ok(d.lines.some((l) => l.msg === 'unexpected exception in the primary; draining workers and exiting'));
    assert.equal(d.count('worker draining'), 2);
    assert.deepEqual(pids.filter(alive), []);
  });

  it('a worker speaking another protocol version is refused and the reload aborts; old workers keep serving', async () => {
    const file = path.join(tmp('drover-proto-'), 'version');
    const d = await startDrover({ args: ['--workers', '2'], env: { DROVER_TEST_PROTOCOL_FILE: file } });
    started.push(d);
    const before = await d.status();
    const mark = d.lines.length;
    fs.writeFileSync(file, '999');
    d.child.kill('SIGHUP');
    const refused = await d.waitForMsg('worker speaks another protocol version (forked from newer files?); refusing it', 10_000, mark);
    assert.equal(refused.workerProtocol, 999);
    const aborted = await d.waitForMsg('reload aborted; the previous generation keeps serving', 10_000, mark);
    assert.match(String(aborted.why), /protocol version mismatch/);
    const gone = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === refused.workerPid, 10_000, mark);
    assert.equal(gone.reason, 'app-error');
    assert.equal(d.lines.slice(mark).filter((l) => l.msg === 'worker spawned').length, 1, 'no second replacement was forked');
    const st = await d.status();
    assert.deepEqual(st.workers.map((w) => w.pid).sort(), before.workers.map((w) => w.pid).sort());
    assert.equal((await getJson(d.url('/ping'))).status, 200);
    fs.rmSync(file);
    await d.stop();
  });
});
