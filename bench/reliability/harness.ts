/**
 * Shared pieces of the reliability scenarios: starting drover through the test harness, reading
 * /status and /metrics without leaving keep-alive sockets in the primary, log-line times.
 */
import * as path from 'node:path';
import { FIXTURES, ROOT, getText, startDrover, status, waitStatus, type Drover, type LogLine, type StartOptions } from '../lib/drover';
import { parseMetrics, type Sample } from '../lib/prom';

export { FIXTURES, ROOT, getText, status, waitStatus };
export const RELIABILITY_APP = path.join(FIXTURES, 'reliability-app.js');
export const PROBE_CLIENT = path.join(ROOT, 'dist', 'test', 'helpers', 'probe-client.js');

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

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The quick profile's value or the standard one's. */
export function pick<T>(profile: 'quick' | 'standard', quick: T, standard: T): T {
  return profile === 'quick' ? quick : standard;
}
