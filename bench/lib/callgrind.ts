import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Instruction counts from valgrind's callgrind: on this shared 2-core machine, throughput runs of
 * the same configuration differ by up to 3x, while callgrind counts the instructions a process
 * runs whatever else the machine does (a fresh process sent the same requests repeats to ~1 %;
 * windows of a running one vary with JIT warm-up and GC). The server processes (primary and
 * workers) run under callgrind; the load generator does not. Instructions are not time (no cache
 * or syscall costs), so the cost suite reports both kinds of figure side by side elsewhere.
 */
export interface Callgrind {
  /** Program to run node with: a wrapper script that execs node under callgrind. */
  exec: string;
  /** Node options for the supervising process: a preload that makes node:cluster fork its workers through `exec`. */
  execArgv: string[];
  /** Reset the counters of these processes. */
  zero(pids: number[]): Promise<void>;
  /** Instructions each process ran since its last zero (dumps a profile per process). */
  dump(pids: number[]): Promise<Map<number, number>>;
  close(): void;
}

/** Why callgrind cannot run here, or undefined when it can. */
export function callgrindMissing(): string | undefined {
  for (const tool of ['valgrind', 'callgrind_control']) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return `${tool} not found (Debian: apt-get install valgrind)`;
  }
  return undefined;
}

export function startCallgrind(): Callgrind {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-callgrind-'));
  const exec = path.join(dir, 'node-under-callgrind.sh');
  // --single-threaded: V8 compiles and collects garbage on the main thread, so its work is
  // counted in the process and does not depend on thread timing. --smc-check: node JIT-compiles.
  // The variable tells the preload (in the supervising process) what to fork workers with.
  fs.writeFileSync(
    exec,
    `#!/bin/sh\nDROVER_BENCH_CALLGRIND_NODE=$0 exec valgrind -q --tool=callgrind --smc-check=all-non-file --callgrind-out-file=${dir}/cg.%p ${process.execPath} --single-threaded "$@"\n`,
    { mode: 0o755 },
  );
  const preload = path.join(__dirname, 'callgrind-preload.js');
  const dumps = (pid: number) => fs.readdirSync(dir).filter((f) => f.startsWith(`cg.${pid}.`));
  const control = async (flag: string, pid: number) => {
    await run('callgrind_control', [flag, String(pid)], { timeout: 120_000 });
  };
  return {
    exec,
    execArgv: ['-r', preload],
    async zero(pids) {
      await Promise.all(pids.map((p) => control('-z', p)));
    },
    async dump(pids) {
      const out = new Map<number, number>();
      await Promise.all(
        pids.map(async (pid) => {
          const before = new Set(dumps(pid));
          await control('-d', pid);
          const fresh = dumps(pid).filter((f) => !before.has(f));
          if (fresh.length !== 1) throw new Error(`callgrind dump of ${pid}: expected one new profile, found ${fresh.length}`);
          const text = fs.readFileSync(path.join(dir, fresh[0]!), 'utf8');
          const m = /^(?:summary|totals): (\d+)/m.exec(text);
          if (!m) throw new Error(`callgrind dump of ${pid} has no totals`);
          out.set(pid, Number(m[1]));
          fs.rmSync(path.join(dir, fresh[0]!));
        }),
      );
      return out;
    },
    close() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
