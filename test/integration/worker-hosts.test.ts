/**
 * The worker module (src/worker/start-worker.ts) under both of its hosts: drover's worker entry
 * forked with this test as its primary (messages seen and sent by hand), and the peers bench's
 * control row, where node:cluster's own primary runs it.
 */
import assert from 'node:assert/strict';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { after, describe, it } from 'node:test';
import { resolveOptions } from '../../src/options';
import { workerConfig } from '../../src/primary/worker-config';
import { WORKER_CONFIG_ENV, type PrimaryToWorker, type WorkerToPrimary } from '../../src/protocol';
import { FIXTURES, ROOT, killTree, type LogLine } from '../../bench/lib/drover';

const ENTRY = path.join(ROOT, 'dist', 'src', 'worker', 'main.js');
const CONTROL_ROW = path.join(ROOT, 'dist', 'bench', 'peers', 'cluster-drover-workers.js');

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** A worker forked from drover's entry, serving gated-boot.js: it stays booting until `open()`. */
class Forked {
  readonly messages: WorkerToPrimary[] = [];
  readonly exited: Promise<Exit>;
  readonly child: ChildProcess;
  private readonly gate: string;

  constructor(dir: string) {
    this.gate = path.join(dir, `gate-${Math.random().toString(36).slice(2)}`);
    const opts = resolveOptions({ 'log-level': 'warn' }, {}, path.join(FIXTURES, 'gated-boot.js'));
    const config = workerConfig(opts, 0, 1, dir, opts.heartbeatIdleIntervalMs);
    this.child = fork(ENTRY, [], {
      env: { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(config), BOOT_GATE: this.gate },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child.on('message', (m) => this.messages.push(m as WorkerToPrimary));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  open(): void {
    fs.writeFileSync(this.gate, '');
  }

  send(msg: PrimaryToWorker): void {
    this.child.send(msg);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first message of `type` (already received or still to come). */
  async next<T extends WorkerToPrimary['type']>(type: T, timeoutMs = 10_000): Promise<Extract<WorkerToPrimary, { type: T }>> {
    type M = Extract<WorkerToPrimary, { type: T }>;
    const seen = this.messages.find((m): m is M => m.type === type);
    if (seen) return seen;
    return new Promise<M>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
      const on = (m: unknown) => {
        if ((m as WorkerToPrimary).type !== type) return;
        clearTimeout(timer);
        this.child.off('message', on);
        resolve(m as M);
      };
      this.child.on('message', on);
    });
  }
}

describe('the worker module under its two hosts', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-worker-hosts-'));
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) killTree(c.pid!);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("drover's entry: a listening worker reports SIGTERM to its primary and drains only on the primary's order", async () => {
    const w = new Forked(dir);
    children.push(w.child);
    w.open();
    assert.equal((await w.next('drover:hello')).pid, w.child.pid);
    assert.ok((await w.next('drover:listening')).privatePort > 0);
    await w.next('drover:heartbeat');
    w.child.kill('SIGTERM');
    assert.equal((await w.next('drover:signal')).signal, 'SIGTERM');
    assert.ok(w.running, 'still running: the primary decides');
    w.send({ type: 'drover:drain', timeoutMs: 5000, idleGraceMs: 0 });
    assert.equal((await w.next('drover:drained')).forced, 0);
    assert.deepEqual(await w.exited, { code: 0, signal: null });
  });

  it("drover's entry: a worker not listening yet reports SIGINT but dies of SIGTERM at once (issue 18, item 3)", async () => {
    const w = new Forked(dir);
    children.push(w.child);
    await w.next('drover:hello');
    w.child.kill('SIGINT');
    assert.equal((await w.next('drover:signal')).signal, 'SIGINT');
    assert.ok(w.running, 'SIGINT is not the primary kill: reported, not acted on');
    const sentAt = performance.now();
    w.child.kill('SIGTERM');
    assert.deepEqual(await w.exited, { code: null, signal: 'SIGTERM' });
    const ms = performance.now() - sentAt;
    assert.ok(ms < 3000, `gone ${Math.round(ms)} ms after SIGTERM`);
    assert.ok(!w.messages.some((m) => m.type === 'drover:signal' && m.signal === 'SIGTERM'), 'SIGTERM was not reported');
    assert.ok(!w.messages.some((m) => m.type === 'drover:listening'));
  });

  it('the control row: node:cluster forks workers that run startWorker on the shared port and answer /ping', async () => {
    const child = spawn(process.execPath, [CONTROL_ROW], {
      env: { ...process.env, WORKERS: '2', PORT: '0', DROVER_ARGS: JSON.stringify(['--request-metrics', 'off', '--shed-loop-delay', '0ms']) },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    children.push(child);
    const lines: LogLine[] = [];
    let port = 0;
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready with two listening workers in 20 s: ${JSON.stringify(lines)}`)), 20_000);
      const done = () => port > 0 && lines.filter((l) => l.msg === 'listening').length === 2 && (clearTimeout(timer), resolve());
      readline.createInterface({ input: child.stdout! }).on('line', (l) => {
        let m: LogLine & { port?: number };
        try {
          m = JSON.parse(l) as LogLine & { port?: number };
        } catch {
          return;
        }
        if (m.msg === 'ready') port = m.port!;
        else lines.push(m);
        done();
      });
      void exited.then((e) => reject(new Error(`control row exited ${JSON.stringify(e)}`)));
    });
    // The workers' own 'listening' lines: drover's worker module, serving the demo app.
    for (const l of lines.filter((x) => x.msg === 'listening')) {
      assert.equal(l.role, 'worker');
      assert.equal(l.privatePort, port, 'listening on the port node:cluster shares, not a private one');
    }
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/ping`, { headers: { connection: 'close' } });
      assert.equal(res.status, 200);
      pids.add(((await res.json()) as { pid: number }).pid);
    }
    assert.equal(pids.size, 2, "node's round-robin hands connections to both workers");
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null });
  });
});
