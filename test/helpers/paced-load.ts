/**
 * The reliability cases' client (test/integration/reliability/): paced lanes with phases, on the
 * bench's one load generator (bench/lib/load.ts, `lanes`).
 */
import type * as hdr from 'hdr-histogram-js';
import { addFailures, lanes, socketPid, type Lanes, type Sent, type Via } from '../../bench/lib/load';
import type { LoadFigures } from '../../bench/reliability/cases';
import { newHistogram, summarize, us, type Summary } from '../../bench/lib/stats';

export interface RequestSpec {
  method?: string;
  path: string;
  body?: string;
  contentType?: string;
}

export interface PhaseFigures extends Summary {
  name: string;
  ok: number;
  failed: number;
  reqPerSec: number;
}

interface Phase {
  name: string;
  latency: hdr.Histogram;
  ok: number;
  failed: number;
  startedAt: number;
  endedAt?: number;
}

/**
 * Rate-limited lanes for the reliability cases: on this 2-core machine a load that sends as fast
 * as answers come back would leave nothing for the replacement worker to boot with, so the rate
 * is held ("a few hundred to ~1,000 req/s") and the achieved rate reported. Each request remembers
 * which worker its socket was on when it was sent, so that after a worker is killed the failures
 * can be checked against what was on that worker (`exposure`). Figures are per phase.
 */
export class PacedLoad {
  readonly failures: Sent[] = [];
  /** Answers by status code (and error code for requests with no answer). */
  readonly statuses: Record<string, number> = {};
  readonly inflight = new Set<Sent>();
  ok = 0;
  failed = 0;
  /** Every answered request, any status (what the workers should have counted). */
  answered = 0;
  readonly pids = new Map<number, number>();
  /** performance.now() of the first answer from each pid. */
  readonly firstSeenAt = new Map<number, number>();
  private run: Lanes | undefined;
  private readonly phases: Phase[] = [];
  private readonly phaseOf = new WeakMap<Sent, Phase>();
  private paused: Promise<void> | undefined;
  private unpause: (() => void) | undefined;
  private drained: (() => void) | undefined;
  private startedAt = 0;
  private pausedMs = 0;
  private pausedAt = 0;

  constructor(private readonly o: { base: string; rate: number; lanes: { keepAlive?: number; fresh?: number; fetch?: number }; next?: () => RequestSpec; timeoutMs?: number }) {}

  start(phase = 'load'): this {
    this.startedAt = performance.now();
    this.beginPhase(phase);
    this.run = lanes({
      ...this.o.lanes, rate: this.o.rate, timeoutMs: this.o.timeoutMs ?? 10_000, timeoutLabel: 'CLIENT_TIMEOUT', readBody: true,
      next: () => {
        const spec = this.o.next?.() ?? { path: '/ping' };
        const headers = spec.body !== undefined ? { 'content-type': spec.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(spec.body)) } : undefined;
        return { url: `${this.o.base}${spec.path}`, method: spec.method, body: spec.body, headers };
      },
      paused: () => this.paused,
      onSend: (s) => {
        this.phaseOf.set(s, this.phases[this.phases.length - 1]!);
        this.inflight.add(s);
      },
      onAnswer: (s) => {
        this.inflight.delete(s);
        this.record(s);
        if (this.paused && this.inflight.size === 0) this.drained?.();
      },
    });
    return this;
  }

  /** Starts a new latency phase (e.g. "attack"); figures are per phase. */
  beginPhase(name: string): void {
    const now = performance.now();
    const cur = this.phases[this.phases.length - 1];
    if (cur) cur.endedAt = now;
    this.phases.push({ name, latency: newHistogram(), ok: 0, failed: 0, startedAt: now });
  }

  phaseFigures(): PhaseFigures[] {
    return this.phases.map((p) => {
      const secs = ((p.endedAt ?? performance.now()) - p.startedAt) / 1000;
      return { name: p.name, ok: p.ok, failed: p.failed, reqPerSec: Math.round((p.ok + p.failed) / Math.max(secs, 0.001)), ...summarize(p.latency) };
    });
  }

  /** Stops sending and resolves once nothing is in flight. */
  pause(): Promise<void> {
    if (!this.paused) {
      this.pausedAt = performance.now();
      this.paused = new Promise((r) => (this.unpause = r));
    }
    if (this.inflight.size === 0) return Promise.resolve();
    return new Promise((r) => (this.drained = r));
  }

  resume(): void {
    if (!this.paused) return;
    this.pausedMs += performance.now() - this.pausedAt;
    this.paused = undefined;
    this.unpause?.();
  }

  /**
   * What a dying worker could take down with it, as this client sees it at this instant: requests
   * in flight on sockets known to be on `pid`, requests in flight whose socket's worker is not known
   * yet (a new connection, not answered yet: it may be on `pid`), and idle keep-alive sockets on
   * `pid` (the next request on each may meet the reset).
   */
  exposure(pid: number): { inFlightOnIt: number; inFlightUnknown: number; idleOnIt: number; bound: number } {
    const lanesNow = this.run?.lanes ?? [];
    const lanePid = (id: number) => {
      const s = lanesNow[id]?.socket;
      return s && !s.destroyed ? socketPid(s) : undefined;
    };
    let inFlightOnIt = 0;
    let inFlightUnknown = 0;
    for (const s of this.inflight) {
      const on = s.socketPid ?? (s.via === 'keepalive' ? lanePid(s.lane) : undefined);
      if (on === pid) inFlightOnIt++;
      else if (on === undefined) inFlightUnknown++;
    }
    let idleOnIt = 0;
    for (const l of lanesNow) if (!l.busy && l.socket && !l.socket.destroyed && socketPid(l.socket) === pid) idleOnIt++;
    return { inFlightOnIt, inFlightUnknown, idleOnIt, bound: inFlightOnIt + inFlightUnknown + idleOnIt };
  }

  /**
   * Failures that `exposure` did not account for: a failed request is explained if it was in
   * flight at `at` on that worker's socket or an unknown one, or was the next request on an idle
   * socket of that worker.
   */
  unexplainedFailures(pid: number, at: number): Sent[] {
    return this.failures.filter((s) => {
      if (s.sentAt <= at) return !(s.socketPid === pid || s.socketPid === undefined);
      return s.socketPid !== pid;
    });
  }

  async stop(): Promise<LoadFigures & { lanes: Record<Via, number>; phases: PhaseFigures[] }> {
    this.run?.stop();
    this.resume();
    await this.run?.done;
    const stoppedAt = performance.now();
    const cur = this.phases[this.phases.length - 1];
    if (cur) cur.endedAt = stoppedAt;
    const secs = (stoppedAt - this.startedAt - this.pausedMs) / 1000;
    const errors: Record<string, number> = {};
    for (const f of this.failures) addFailures(errors, { [f.error ?? `status ${f.status}`]: 1 });
    const lanesByVia = { keepalive: 0, fresh: 0, fetch: 0 };
    for (const l of this.run?.lanes ?? []) lanesByVia[l.via]++;
    return {
      targetPerSec: this.o.rate,
      reqPerSec: Math.round((this.ok + this.failed) / Math.max(secs, 0.001)),
      requests: this.ok + this.failed,
      failed: this.failed,
      errors,
      lanes: lanesByVia,
      phases: this.phaseFigures(),
    };
  }

  private record(s: Sent): void {
    const phase = this.phaseOf.get(s)!;
    const key = s.status !== undefined ? String(s.status) : s.error!;
    this.statuses[key] = (this.statuses[key] ?? 0) + 1;
    if (s.status !== undefined) this.answered++;
    if (s.pid !== undefined) {
      this.pids.set(s.pid, (this.pids.get(s.pid) ?? 0) + 1);
      if (!this.firstSeenAt.has(s.pid)) this.firstSeenAt.set(s.pid, s.endedAt!);
    }
    if (s.error !== undefined || (s.status ?? 0) >= 500) {
      this.failed++;
      phase.failed++;
      this.failures.push(s);
      return;
    }
    this.ok++;
    phase.ok++;
    phase.latency.recordValue(us(s.endedAt! - s.due));
  }
}
