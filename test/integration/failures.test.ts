import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BIN, FIXTURES, run, startDrover } from '../../bench/lib/drover';

const startArgs = ['--port', '0', '--control-port', '0', '--host', '127.0.0.1'];

describe('failures stop drover with a clear message and a documented code', () => {
  it('an app that throws on load: exit 3 within a few seconds, no respawn storm', async () => {
    const d = await startDrover({ app: path.join(FIXTURES, 'throws-on-load.js'), args: ['--workers', '2'], ready: false });
    const started = Date.now();
    const exit = await d.exited;
    assert.equal(exit.code, 3);
    assert.ok(Date.now() - started < 5000);
    const fatal = d.lines.find((l) => l.msg === 'the app cannot be loaded; stopping instead of respawning');
    assert.ok(fatal, d.tail());
    assert.match(String(fatal.error), /cannot connect to the configuration service/);
    assert.ok(d.count('worker spawned') <= 2, `spawned ${d.count('worker spawned')} workers for 2 slots`);
  });

  it('a module that exports no app: exit 3 naming what it got', async () => {
    const d = await startDrover({ app: path.join(FIXTURES, 'not-an-app.js'), args: ['--workers', '1'], ready: false });
    assert.equal((await d.exited).code, 3);
    const fatal = d.lines.find((l) => l.msg === 'app failed to load');
    assert.match(JSON.stringify(fatal), /not-an-app\.js: its default export is an object with keys \[port\]\. drover serves an Express app, a Fastify instance, a request listener/);
  });

  it('workers that die during boot: backoff, then exit 4 (crash loop)', async () => {
    const d = await startDrover({
      app: path.join(FIXTURES, 'exits-on-boot.js'),
      args: ['--workers', '1', '--max-boot-failures', '4', '--restart-delay', '50ms'],
      ready: false,
    });
    const exit = await d.exited;
    assert.equal(exit.code, 4);
    assert.equal(d.count('worker spawned'), 4);
    assert.ok(d.count('respawn delayed (backoff)') >= 2, 'respawns after the first were delayed');
    assert.ok(d.lines.some((l) => l.msg === 'workers keep dying before they listen; stopping (crash loop)'));
  });

  it('a port in use: exit 5 with the address in the message', async () => {
    const d = await startDrover({ args: ['--workers', '1'] });
    const out = await run(process.execPath, [BIN, 'start', '--port', String(d.port), '--host', '127.0.0.1', '--control-port', '0']);
    assert.equal(out.code, 5);
    assert.match(out.stderr, new RegExp(`cannot listen on the app port 127\\.0\\.0\\.1:${d.port}`));
    await d.stop();
  });

  const badFlags: [string[], RegExp][] = [
    [['--wrokers', '2'], /Unknown option '--wrokers'/],
    [['--workers', 'two'], /--workers: expected a whole number, got 'two'/],
    [['--workers', '0'], /--workers: expected at least 1/],
    [['--worker-timeout', '30'], /--worker-timeout: expected a duration with a unit, like 500ms, 10s or 2m, got '30'/],
    [['--dispatch', 'random'], /--dispatch: expected one of least-busy, round-robin, got 'random'/],
    [['--port', '70000'], /--port: expected a port number 0-65535/],
    [['--workers'], /--workers/],
    [['./no/such/app.js'], /app module not found/],
    [['a.js', 'b.js'], /takes one app path/],
  ];
  for (const [args, message] of badFlags) {
    it(`bad usage exits 2: drover start ${args.join(' ')}`, async () => {
      const out = await run(process.execPath, [BIN, 'start', ...startArgs, ...args]);
      assert.equal(out.code, 2, out.stdout + out.stderr);
      assert.match(out.stderr, message);
    });
  }

  it('a bad environment value exits 2 naming the variable', async () => {
    const out = await run(process.execPath, [BIN, 'start', ...startArgs], { env: { ...process.env, WEB_CONCURRENCY: 'lots' } });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /environment variable WEB_CONCURRENCY: expected a whole number, got 'lots'/);
  });

  it('unknown command exits 2; --help exits 0', async () => {
    const bad = await run(process.execPath, [BIN, 'strat']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown command 'strat'/);
    for (const cmd of ['start', 'status', 'reload']) {
      const help = await run(process.execPath, [BIN, cmd, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`Usage: drover ${cmd}`));
    }
  });

  it('`drover status` with nothing running says so and exits 1', async () => {
    const out = await run(process.execPath, [BIN, 'status', '--control-port', '1']);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /no drover control server answered at http:\/\/127\.0\.0\.1:1/);
  });
});
