import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, freePort, run, type Status } from '../../bench/lib/drover';
import { alive } from '../helpers/proc';
import { getJson } from '../helpers/http';

const PM2 = path.join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2');

describe('pm2 end to end (real pm2, temporary PM2_HOME)', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-pm2-'));
  let env: NodeJS.ProcessEnv;
  let controlPort = 0;
  let port = 0;
  const pm2 = (...args: string[]) => run(process.execPath, [PM2, ...args], { env, timeoutMs: 60_000 });
  const status = async () => (await getJson<Status>(`http://127.0.0.1:${controlPort}/status`)).body;

  before(async () => {
    port = await freePort();
    controlPort = await freePort();
    env = {
      ...process.env,
      PM2_HOME: home,
      PORT: String(port),
      DROVER_HOST: '127.0.0.1',
      DROVER_CONTROL_PORT: String(controlPort),
      DROVER_WORKERS: '2',
      DROVER_DRAIN_IDLE_GRACE: '200ms',
    };
  });

  after(async () => {
    await pm2('kill');
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('starts ready, reloads on `pm2 sendSignal SIGHUP`, and `pm2 delete` leaves no drover process', async () => {
    const start = await pm2('start', path.join(ROOT, 'ecosystem.config.js'));
    assert.equal(start.code, 0, start.stdout + start.stderr);
    // wait_ready: pm2 start returns once drover said ready, so probes answer at once.
    const ready = await getJson(`http://127.0.0.1:${controlPort}/readyz`);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    const ping = await getJson<{ pid: number }>(`http://127.0.0.1:${port}/ping`);
    assert.equal(ping.status, 200);

    const before = await status();
    assert.equal(before.workers.length, 2);
    // Under pm2 the primary is pm2's fork-mode child; its own workers must run drover's worker
    // entry, not pm2's wrapper (cluster.setupPrimary({ exec })).
    const list = JSON.parse((await pm2('jlist')).stdout) as { pid: number; pm2_env: { status: string; exec_mode: string } }[];
    assert.equal(list.length, 1);
    assert.equal(list[0]!.pid, before.drover.pid);
    assert.equal(list[0]!.pm2_env.exec_mode, 'fork_mode');
    assert.equal(list[0]!.pm2_env.status, 'online');

    const sig = await pm2('sendSignal', 'SIGHUP', 'drover');
    assert.equal(sig.code, 0, sig.stderr);
    const deadline = Date.now() + 20_000;
    let after = await status();
    while (after.drover.reloads.completed < 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await status();
    }
    assert.equal(after.drover.reloads.completed, 1, 'the rolling reload completed');
    assert.equal(after.drover.pid, before.drover.pid, 'the primary was not restarted');
    assert.ok(after.workers.every((w) => w.generation === 2));

    const pids = [after.drover.pid, ...after.workers.map((w) => w.pid)];
    const del = await pm2('delete', 'drover');
    assert.equal(del.code, 0, del.stderr);
    // pm2 delete returns after the process tree is gone (or kill_timeout); verify nothing is left.
    const gone = Date.now() + 10_000;
    while (pids.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(pids.filter(alive), [], 'no drover process remains');
    const outLog = fs.readdirSync(path.join(home, 'logs')).find((f) => f.startsWith('drover-out'))!;
    const log = fs.readFileSync(path.join(home, 'logs', outLog), 'utf8');
    assert.match(log, /"msg":"drover stopped"/, 'the primary drained and stopped cleanly');
    // pm2's tree-kill signals the workers too: drover must not replace workers it is about to drain.
    assert.equal(log.match(/"msg":"worker spawned"/g)?.length, 4, '2 at start + 2 for the reload, none during delete');
  });
});
