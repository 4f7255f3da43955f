/**
 * drover as a dependency: the tarball `npm pack` makes is installed into a fresh project that holds
 * only express, and that project runs an app through `npx drover` and requires the toolkit, as a
 * user would. Nothing of the repository is on the consumer's module path.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import { Drover, ROOT, killTree, run } from '../../bench/lib/drover';

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/** Bytes under a folder, as `du` would add them up (regular files only). */
function treeBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += treeBytes(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

describe('drover installed as a dependency', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-pack-'));
  const started: Drover[] = [];
  after(() => {
    // The whole process group: npx, drover's primary and its workers.
    for (const d of started) killTree(d.pid);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** `npx drover start ARGS` in the consumer, on free loopback ports, once it is ready. */
  async function npxDrover(cwd: string, args: string[]): Promise<{ d: Drover; primaryPid: number }> {
    const child = spawn('npx', ['--no-install', 'drover', 'start', ...args, '--workers', '1', '--port', '0', '--control-port', '0', '--host', '127.0.0.1'], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: after() kills npx, the primary and its workers at once
    });
    const d = new Drover(child);
    started.push(d);
    const listening = await d.waitForMsg('drover listening', 30_000);
    d.port = listening.port as number;
    await d.waitForMsg('drover ready', 30_000);
    return { d, primaryPid: listening.pid };
  }

  it('the tarball holds the runtime and no tests, bench or results; a fresh project runs an app with npx drover, requires the toolkit, and runs the demo (/items: 503 naming its missing driver)', { timeout: 240_000 }, async (t) => {
    // dist/ is built by `npm test`'s pretest; --ignore-scripts keeps pack from rebuilding it mid-run.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, timeoutMs: 60_000 });
    assert.equal(packed.code, 0, packed.stderr);
    const pack = (JSON.parse(packed.stdout) as PackResult[])[0]!;
    const files = pack.files.map((f) => f.path);
    t.diagnostic(`tarball: ${files.length} files, ${(pack.size / 1024).toFixed(0)} KiB packed, ${(pack.unpackedSize / 1024).toFixed(0)} KiB unpacked`);
    for (const must of ['bin/drover.js', 'dist/src/cli.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/worker/main.js', 'package.json', 'README.md']) {
      assert.ok(files.includes(must), `${must} is in the tarball`);
    }
    const stray = files.filter((f) => /^(test|bench|dist\/test|dist\/bench|docs|\.ci)\//.test(f));
    assert.deepEqual(stray, [], 'no tests, benchmarks, results or docs in the tarball');

    const consumer = path.join(tmp, 'consumer');
    fs.mkdirSync(consumer);
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }) + '\n');
    fs.writeFileSync(
      path.join(consumer, 'app.js'),
      "const express = require('express');\nconst app = express();\napp.get('/', (req, res) => res.send('hello from ' + process.env.DROVER_WORKER_SLOT));\nmodule.exports = app;\n",
    );
    const installStarted = performance.now();
    // --prefer-offline: the packages are in npm's cache after the repository's own install.
    const installed = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(tmp, pack.filename), 'express@5'], { cwd: consumer, timeoutMs: 180_000 });
    const installMs = performance.now() - installStarted;
    assert.equal(installed.code, 0, installed.stdout + installed.stderr);
    const deps = Object.keys((JSON.parse(fs.readFileSync(path.join(consumer, 'package.json'), 'utf8')) as { dependencies: object }).dependencies);
    t.diagnostic(`npm install: ${(installMs / 1000).toFixed(1)} s; node_modules ${(treeBytes(path.join(consumer, 'node_modules')) / 2 ** 20).toFixed(1)} MiB; drover itself ${(treeBytes(path.join(consumer, 'node_modules', 'drover')) / 2 ** 20).toFixed(2)} MiB`);
    assert.deepEqual(deps.sort(), ['drover', 'express']);
    for (const demoOnly of ['better-sqlite3', 'pg']) {
      assert.equal(fs.existsSync(path.join(consumer, 'node_modules', demoOnly)), false, `${demoOnly} (demo-only) is not installed`);
    }

    const toolkit = await run(process.execPath, ['-e', "const d = require('drover'); for (const f of ['streamJson', 'readRawBody', 'offload', 'offloadBody']) if (typeof d[f] !== 'function') { console.error(f + ' missing'); process.exit(1); }"], { cwd: consumer });
    assert.equal(toolkit.code, 0, `require('drover') gives the toolkit: ${toolkit.stderr}`);

    const { d, primaryPid } = await npxDrover(consumer, ['app.js']);
    const res = await fetch(d.url('/'));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello from 0');

    // SIGTERM to drover's primary, as a process manager would send it: npx itself does not wait for
    // its child when signalled, but it does exit with the child's code.
    process.kill(primaryPid, 'SIGTERM');
    const exit = await d.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, `drover stopped cleanly\n${d.tail()}`);

    // The bundled demo runs from the installed copy too; its database driver is not installed
    // with drover, so /items says so instead of failing the worker.
    const { d: demo, primaryPid: demoPid } = await npxDrover(consumer, []);
    assert.equal((await fetch(demo.url('/ping'))).status, 200);
    const items = await fetch(demo.url('/items'));
    assert.equal(items.status, 503, 'the demo answers /items with 503 without its database driver');
    await demo.until(async () => demo.stderr.some((l) => l.includes('npm install better-sqlite3')), 'the log names the package to install');
    process.kill(demoPid, 'SIGTERM');
    assert.deepEqual(await demo.exited, { code: 0, signal: null }, demo.tail());
  });
});
