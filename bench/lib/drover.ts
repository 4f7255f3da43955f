/**
 * Harness of the tests and the bench: starts a real drover (bin/drover.js) on port 0, reads its
 * JSON log lines, and waits on them. No sleeps: every wait is for a log event, a process exit or an HTTP answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Status, WorkerStatus } from '../../src/primary/control-server';
import { waitUntil } from './wait';

export type { Status, WorkerStatus };

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'drover.js');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

export interface LogLine {
  level: number;
  msg: string;
  pid: number;
  role?: string;
  [k: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Drover extends EventEmitter {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  port = 0;
  controlPort = 0;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;

  constructor(readonly child: ChildProcess) {
    super();
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.emit('exit');
        resolve(this.exit);
      });
    });
    readline.createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { level: 30, msg: text, pid: 0, raw: true };
      }
      this.lines.push(line);
      if (process.env.DROVER_TEST_VERBOSE) process.stdout.write(`  | ${text}\n`);
      this.emit('line', line);
    });
    readline.createInterface({ input: child.stderr! }).on('line', (text) => {
      this.stderr.push(text);
      if (process.env.DROVER_TEST_VERBOSE) process.stdout.write(`  ! ${text}\n`);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log line (already seen from index `from`, or future) matching `pred`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    for (let i = from; i < this.lines.length; i++) if (pred(this.lines[i]!)) return Promise.resolve(this.lines[i]!);
    return new Promise((resolve, reject) => {
      const onLine = (l: LogLine) => {
        if (!pred(l)) return;
        cleanup();
        resolve(l);
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`drover exited (${JSON.stringify(this.exit)}) before the awaited log line\n${this.tail()}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for a log line\n${this.tail()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('line', onLine);
        this.off('exit', onExit);
      };
      this.on('line', onLine);
      this.on('exit', onExit);
    });
  }

  waitForMsg(msg: string, timeoutMs?: number, from?: number): Promise<LogLine> {
    return this.waitFor((l) => l.msg === msg, timeoutMs, from);
  }

  /** Counts log lines with this message. */
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  tail(n = 25): string {
    return [...this.lines.slice(-n).map((l) => JSON.stringify(l)), ...this.stderr.slice(-5)].join('\n');
  }

  url(p: string): string {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  controlUrl(p: string): string {
    return `http://127.0.0.1:${this.controlPort}${p}`;
  }

  async status(): Promise<Status> {
    const res = await fetch(this.controlUrl('/status'));
    return (await res.json()) as Status;
  }

  /**
   * Re-checks an observable condition (usually /status) until it holds, bounded. For states that
   * have no log line of their own, e.g. "a worker reports one request in flight".
   */
  async until(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
    await waitUntil(cond, what, timeoutMs, 20).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail()}`);
    });
  }

  /** SIGTERM and wait for exit; SIGKILL the whole group if it does not stop in time. */
  async stop(timeoutMs = 20_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => killTree(this.pid), timeoutMs);
    const e = await this.exited;
    clearTimeout(timer);
    return e;
  }
}

export function killTree(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export interface StartOptions {
  app?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Wait for 'drover ready' (all workers listening). Default true. */
  ready?: boolean;
  /** Program that runs node (default: this node); benchmarks pass a callgrind wrapper. */
  exec?: string;
  /** Node options before drover's entry (e.g. `-r` a preload). */
  execArgv?: string[];
  /** How long to wait for listening and ready (default 10 s and 15 s). */
  timeoutMs?: number;
}

const running = new Set<Drover>();
process.on('exit', () => {
  for (const d of running) if (!d.exit) killTree(d.pid);
});

/** Start drover on free ports; resolves once it listens (and, by default, all workers are ready). */
export async function startDrover(o: StartOptions = {}): Promise<Drover> {
  const args = [...(o.execArgv ?? []), BIN, 'start', ...(o.app ? [o.app] : []), '--port', '0', '--control-port', '0', '--host', '127.0.0.1', ...(o.args ?? [])];
  const child = spawn(o.exec ?? process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group, so a failed test can kill the whole tree
  });
  const d = new Drover(child);
  running.add(d);
  void d.exited.then(() => running.delete(d));
  const listening = await d.waitForMsg('drover listening', o.timeoutMs ?? 10_000);
  d.port = listening.port as number;
  d.controlPort = listening.controlPort as number;
  if (o.ready !== false) await d.waitForMsg('drover ready', o.timeoutMs ?? 15_000);
  return d;
}

/** Run a command to completion, collecting its output. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}
