/**
 * Shared pieces of the reliability scenarios: starting drover through the test harness, reading
 * /status and /metrics without leaving keep-alive sockets in the primary, log-line times.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { FIXTURES, ROOT, startDrover, type Drover, type LogLine, type StartOptions } from '../lib/drover';
import { parseMetrics, type Sample } from '../lib/prom';

export { FIXTURES, ROOT };
export const RELIABILITY_APP = path.join(FIXTURES, 'reliability-app.js');
export const PROBE_CLIENT = path.join(ROOT, 'dist', 'test', 'helpers', 'probe-client.js');

export interface WorkerRow {
  slot: number;
  pid: number;
  phase: string;
  generation: number;
  heartbeatAgeMs: number;
  inFlight: number | null;
  connections: number | null;
  requests: number | null;
  rssBytes: number | null;
  dispatched: number;
}

export interface FullStatus {
  drover: { pid: number; phase: string; generation: number; ready: boolean; exits: Record<string, number>; dispatcher: Record<string, number> };
  workers: WorkerRow[];
}

/** Starts drover; every drover started here is stopped by `stopAll` (and killed at exit by the harness). */
export class Fleet {
  private readonly started: Drover[] = [];

  async start(o: StartOptions): Promise<Drover> {
    const d = await startDrover(o);
    this.started.push(d);
    return d;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.started.map((d) => d.stop()));
  }
}

/** One GET on its own connection (no keep-alive socket left in the primary, which would count as an fd). */
export function getText(url: string, headers: Record<string, string> = {}, method = 'GET', timeoutMs = 5000): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.end();
  });
}

export async function status(d: Drover): Promise<FullStatus> {
  return JSON.parse((await getText(d.controlUrl('/status'))).body) as FullStatus;
}

export async function scrape(d: Drover, headers: Record<string, string> = {}): Promise<Sample[]> {
  const r = await getText(d.controlUrl('/metrics'), headers);
  if (r.status !== 200) throw new Error(`GET /metrics answered ${r.status}`);
  return parseMetrics(r.body);
}

/** Wall-clock ms of a log line (pino's ISO time), comparable with Date.now() in this process. */
export function lineTime(l: LogLine): number {
  return Date.parse(String(l.time));
}

export function linesSince(d: Drover, mark: number, msg: string | ((l: LogLine) => boolean)): LogLine[] {
  const pred = typeof msg === 'string' ? (l: LogLine) => l.msg === msg : msg;
  return d.lines.slice(mark).filter(pred);
}

/** Polls /status until `pick` returns a value, bounded. */
export async function waitStatus<T>(d: Drover, what: string, pick: (s: FullStatus) => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = pick(await status(d));
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}\n${d.tail()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The quick profile's value or the standard one's. */
export function pick<T>(profile: 'quick' | 'standard', quick: T, standard: T): T {
  return profile === 'quick' ? quick : standard;
}
