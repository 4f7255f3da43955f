/**
 * Test harness for S1's slow upstream (src/demo/slow-upstream.ts): runs it as its own process on
 * port 0, so a test's own event loop never delays it, and waits for its listening line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { UpstreamStats } from '../../src/demo/slow-upstream';
import type { Exit } from './drover';
import { ROOT } from './drover';

/** The compiled upstream entry (run `npm run build` first). */
export const UPSTREAM_BIN = path.join(ROOT, 'dist', 'src', 'demo', 'slow-upstream.js');

export interface Upstream {
  child: ChildProcess;
  port: number;
  /** Base URL, as drover's UPSTREAM_URL expects it. */
  url: string;
  exited: Promise<Exit>;
  /** The upstream's counters (pending waits and so on), from GET /stats. */
  stats(): Promise<UpstreamStats>;
  /** Re-reads /stats until `cond` holds, bounded: "the call has reached the upstream". */
  until(cond: (s: UpstreamStats) => boolean, what: string, timeoutMs?: number): Promise<UpstreamStats>;
  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`. */
  stop(timeoutMs?: number): Promise<Exit>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** Starts the upstream process; resolves once it prints `{"msg":"upstream listening","port":P}`. */
export async function startUpstream(timeoutMs = 10_000): Promise<Upstream> {
  const child = spawn(process.execPath, [UPSTREAM_BIN, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`upstream did not start within ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    void exited.then((e) => reject(new Error(`upstream exited before listening (${JSON.stringify(e)})\n${stderr}`)));
    readline.createInterface({ input: child.stdout! }).on('line', (text) => {
      try {
        const line = JSON.parse(text) as { msg?: string; port?: number };
        if (line.msg === 'upstream listening' && typeof line.port === 'number') {
          clearTimeout(timer);
          resolve(line.port);
        }
      } catch {
        /* not a JSON line */
      }
    });
  }).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  const url = `http://127.0.0.1:${port}`;
  const stats = async () => (await (await fetch(`${url}/stats`)).json()) as UpstreamStats;
  return {
    child,
    port,
    url,
    exited,
    stats,
    async until(cond, what, waitMs = 10_000) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const s = await stats();
        if (cond(s)) return s;
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop(waitMs = 5_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), waitMs);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
  };
}
