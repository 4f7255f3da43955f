/**
 * Shared pieces of the reliability cases (test/integration/reliability/): `reliabilityCase` runs one
 * as a node:test test, each check a subtest; `CaseBuilder` collects a case's checks; starting
 * drover, reading /status and /metrics without leaving keep-alive sockets in the primary, log-line
 * times. Their load is test/helpers/paced-load.ts.
 *
 * `npm test` runs the quick profile with a 30 s soak (2 minutes when CI is set). `npm run reliability`
 * runs these files with DROVER_RELIABILITY_PROFILE, DROVER_SOAK_SECONDS, DROVER_RELIABILITY_CASES
 * (ids, comma-separated) and DROVER_RELIABILITY_RESULTS (a file each case's result is appended to,
 * one JSON line, for bench/results/reliability.json and docs/reliability.md).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { FIXTURES, ROOT, startDrover, type Drover, type LogLine, type StartOptions } from '../../bench/lib/drover';
import { getText, status, waitStatus } from './status';
import { parseMetrics, type Sample } from './prom';
import { CASES, noResult, type CaseResult, type Check, type Profile, type ScenarioOptions } from '../../bench/reliability/cases';

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

/** Lanes for a target rate: enough that each lane's pace (lanes / rate) leaves room for a slow answer. */
export function lanesFor(rate: number): number {
  return Math.max(4, Math.round(rate / 25));
}

const env = process.env;
const options: Omit<ScenarioOptions, 'progress'> = {
  profile: (env.DROVER_RELIABILITY_PROFILE === 'standard' ? 'standard' : 'quick') as Profile,
  soakSeconds: Number(env.DROVER_SOAK_SECONDS) || (env.CI ? 120 : 30),
};

function figures(r: CaseResult): string {
  const parts = [
    r.load ? `load ${r.load.reqPerSec} req/s (target ${r.load.targetPerSec}), ${r.load.requests} requests` : '',
    r.failed !== null ? `failed ${r.failed}${r.bound !== null ? ` (bound ${r.bound})` : ''}${r.load && r.failed ? ` ${JSON.stringify(r.load.errors)}` : ''}` : '',
    r.recoveryMs !== null ? `recovery ${r.recoveryMs} ms${r.recoveryGoalMs ? ` (goal ${r.recoveryGoalMs} ms)` : ''}` : '',
    r.inputs !== undefined ? `${r.inputs} inputs` : '',
  ];
  return parts.filter(Boolean).join('; ');
}

/**
 * The case `id` of bench/reliability/cases.ts as a test: each check of its result is a subtest
 * (a check failing because of a known drover bug is a `todo` naming the bug, so the suite stays
 * green and the bug visible).
 */
export function reliabilityCase(id: string, run: (o: ScenarioOptions) => Promise<CaseResult>): void {
  const c = CASES.find((x) => x.id === id)!;
  const chosen = env.DROVER_RELIABILITY_CASES?.split(',');
  // Generous: the estimate is for an idle machine; this one has 2 shared cores.
  const timeout = (c.estimateS(options) * 4 + 60) * 1000;
  it(c.title, { timeout, skip: chosen && !chosen.includes(id) ? 'not chosen' : false }, async (t) => {
    const t0 = Date.now();
    let r: CaseResult;
    try {
      r = await run({ ...options, progress: (msg) => t.diagnostic(msg) });
    } catch (err) {
      record(noResult(id, (err as Error).stack ?? String(err), Math.round((Date.now() - t0) / 100) / 10));
      throw err;
    }
    record(r);
    t.diagnostic(`${r.id} in ${r.durationS} s: ${figures(r)}`);
    for (const note of r.notes) t.diagnostic(note);
    for (const check of r.checks) {
      await t.test(check.name, check.knownBug ? { todo: check.knownBug } : {}, () => {
        assert.ok(check.ok, `${check.name}: measured ${check.value ?? '?'}${check.limit !== undefined ? `, bound ${check.limit}` : ''}`);
      });
    }
    assert.ok(r.checks.length > 0, 'the case checked something');
  });
}

function record(r: CaseResult): void {
  if (env.DROVER_RELIABILITY_RESULTS) fs.appendFileSync(env.DROVER_RELIABILITY_RESULTS, JSON.stringify(r) + '\n');
}

/** Collects checks and notes while a scenario runs, then builds its result. */
export class CaseBuilder {
  readonly checks: Check[] = [];
  readonly notes: string[] = [];
  private readonly started = Date.now();
  private readonly c: (typeof CASES)[number];

  /** The case's title (unless given: the soak's names its length) and group are its entry in CASES. */
  constructor(
    readonly id: string,
    private readonly title?: string,
  ) {
    this.c = CASES.find((x) => x.id === id)!;
  }

  check(name: string, ok: boolean, value?: string | number, limit?: string | number, knownBug?: string): boolean {
    this.checks.push({ name, ok, ...(value !== undefined ? { value } : {}), ...(limit !== undefined ? { limit } : {}), ...(knownBug ? { knownBug } : {}) });
    return ok;
  }

  note(text: string): void {
    this.notes.push(text);
  }

  done(r: Omit<CaseResult, 'id' | 'case' | 'group' | 'checks' | 'notes' | 'pass' | 'durationS'>): CaseResult {
    return {
      id: this.id,
      case: this.title ?? this.c.title,
      group: this.c.group,
      ...r,
      checks: this.checks,
      notes: this.notes,
      pass: this.checks.every((c) => c.ok || c.knownBug !== undefined),
      durationS: Math.round((Date.now() - this.started) / 100) / 10,
    };
  }
}
