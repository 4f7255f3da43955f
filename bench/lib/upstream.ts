/**
 * Test harness for S1's slow upstream (src/demo/slow-upstream.ts): runs it as its own process on
 * port 0, so a test's own event loop never delays it, and waits for its listening line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { UpstreamStats } from '../../src/demo/slow-upstream';
import { ROOT, type Exit } from './drover';
import { firstLine, portLine, waitUntil } from './wait';

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
  const port = await firstLine(child, portLine('upstream listening'), 'upstream', timeoutMs).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}\n${stderr}`);
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
      let s: UpstreamStats | undefined;
      await waitUntil(async () => cond((s = await stats())), what, waitMs).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(s)}`);
      });
      return s!;
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
