/**
 * Starts a real Prometheus (Debian package `prometheus`) on a free loopback port with a temporary
 * config and data dir, scraping the given targets every second. In CI a missing binary is a
 * failure, not a skip: the metrics tests are the proof that the exposition works for real.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../../bench/lib/drover';

export function haveBinary(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** undefined when the test may run; otherwise the reason to skip (never in CI: there it throws). */
export function prometheusSkipReason(): string | undefined {
  if (haveBinary('prometheus') && haveBinary('promtool')) return undefined;
  const msg = 'prometheus/promtool not installed (Debian package `prometheus`; .ci/run installs it)';
  if (process.env.CI) throw new Error(`${msg}: required in CI`);
  return msg;
}

/** A port that was free a moment ago (bind to 0, read it, close). */
export class Prometheus {
  constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly dir: string,
    readonly output: string[],
  ) {}

  async query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: unknown } };
    if (body.status !== 'success') throw new Error(`query failed: ${expr}: ${body.error}`);
    if (body.data.resultType === 'scalar') {
      return [{ metric: {}, value: body.data.result as [number, string] }];
    }
    return body.data.result as { metric: Record<string, string>; value: [number, string] }[];
  }

  /** Polls a query until `ok` holds for its result, bounded: Prometheus scrapes on its own clock. */
  async until(expr: string, ok: (r: Awaited<ReturnType<Prometheus['query']>>) => boolean, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.query(expr);
      if (ok(r)) return r;
      if (Date.now() > deadline) throw new Error(`timed out: ${expr} => ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startPrometheus(targets: string[], extra: { rules?: string[] } = {}): Promise<Prometheus> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-prom-'));
  const port = await freePort();
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    ...(extra.rules?.length ? ['rule_files:', ...extra.rules.map((r) => `  - ${JSON.stringify(r)}`)] : []),
    'scrape_configs:',
    '  - job_name: drover',
    '    static_configs:',
    `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const output: string[] = [];
  const child = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (b: Buffer) => output.push(b.toString()));
  child.stderr!.on('data', (b: Buffer) => output.push(b.toString()));
  const p = new Prometheus(child, `http://127.0.0.1:${port}`, dir, output);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited: ${output.join('')}`);
    try {
      const res = await fetch(`${p.url}/-/ready`);
      if (res.status === 200) return p;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`prometheus did not become ready: ${output.join('').slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
