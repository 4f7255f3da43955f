/**
 * The client that keeps big work in flight, in a process of its own. Sending 25 MB bodies or
 * reading 23 MB responses costs the client real CPU; on the measuring process's event loop that
 * would delay the open-loop schedule of the small requests and count the client's own lateness as
 * the server's. Run as a child (`bigClient()` below): it loops on one URL, back to back on new
 * connections, until its stdin closes, then prints one JSON line with what it saw.
 *
 *   node big-client.js <url> [bodyBytes]     bodyBytes > 0: POST makeIngestBody(bodyBytes)
 */
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type * as hdr from 'hdr-histogram-js';
import { makeIngestBody } from '../../src/demo/s3';
import { lanes } from './load';
import { newHistogram, us } from './stats';

export interface Report {
  latencyMs: number[];
  errors: number;
}

/**
 * Starts the child: `ready` once it has built its body and starts looping; `stop()` ends its
 * loop after the request in flight and returns what it measured.
 */
export function bigClient(url: string, bodyBytes = 0): { ready: Promise<void>; stop(): Promise<{ latency: hdr.Histogram; errors: number }> } {
  const child = spawn(process.execPath, [__filename, url, String(bodyBytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
    if (out.startsWith('started\n')) markReady();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(markReady); // a child that died early: stop() says why
  process.on('exit', () => child.kill('SIGKILL'));
  return {
    ready,
    async stop() {
      child.stdin!.end();
      await exited;
      const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Partial<Report>;
      if (!Array.isArray(r.latencyMs)) throw new Error(`big client reported nothing: ${out.slice(0, 200)}`);
      const latency = newHistogram();
      for (const ms of r.latencyMs) latency.recordValue(us(ms));
      return { latency, errors: r.errors ?? 0 };
    },
  };
}

/**
 * The loop itself, in the calling process: back to back on new connections, or through `agent`
 * (the proxy suite shares its FIFO pool with the small requests, so its big loop must run there).
 * `stop()` ends it after the request in flight.
 */
export function bigLoop(url: string, body?: Buffer, agent: http.Agent | false = false): { stop(): Promise<Report> } {
  const report: Report = { latencyMs: [], errors: 0 };
  const run = lanes({
    ...(agent ? { keepAlive: 1, agent } : { fresh: 1 }),
    next: () => ({ url, method: body ? 'POST' : 'GET', body, headers: body ? { 'content-type': 'application/json' } : {} }),
    onAnswer: (s) => {
      if (s.status === 200) report.latencyMs.push(s.endedAt! - s.sentAt);
      else report.errors++;
    },
  });
  return {
    async stop() {
      run.stop();
      await run.done;
      return report;
    },
  };
}

async function main(url: string, bodyBytes: number): Promise<void> {
  const loop = bigLoop(url, bodyBytes > 0 ? makeIngestBody(bodyBytes) : undefined);
  process.stdout.write('started\n');
  await new Promise<void>((resolve) => process.stdin.on('end', resolve).resume());
  process.stdout.write(JSON.stringify(await loop.stop()) + '\n');
}

if (require.main === module) {
  void main(process.argv[2]!, Number(process.argv[3] ?? 0));
}
