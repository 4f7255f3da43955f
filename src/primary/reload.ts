import { performance } from 'node:perf_hooks';
import type { Logger } from '../log';
import type { WorkerHandle } from './worker-handle';

/**
 * Rolling reload, one worker at a time: `step` names the next old-generation worker to retire; its
 * slot is then uncovered, so the supervisor's tick forks the replacement; when that one listens,
 * the supervisor drains the retiring one, and the next step names the next old worker while that
 * drain runs (a draining worker takes no new connections: it only finishes what it holds, and with
 * idle keep-alive clients that lasts the keep-alive timeout, ADR 0021). At most `--reload-drains`
 * drains run beside a step, so a reload adds at most that + 1 processes to N (by default two: one
 * booting and one draining, or two draining; ADR 0022). The reload completes once the last old
 * worker has left. A replacement that fails to come up aborts the reload (the supervisor keeps the
 * retiring worker) and the old generation keeps serving. This file keeps the reload's progress;
 * the workers' states are the lifecycle's (src/primary/worker-lifecycle.ts).
 */
export class RollingReload {
  /** The generation being rolled out, while a reload runs. */
  generation: number | undefined;
  replaced = 0;
  completed = 0;
  aborted = 0;
  private startedAt = 0;

  /** `drainsBesideAStep`: `--reload-drains`, the old workers that may still drain when a step starts. */
  constructor(
    private readonly log: Logger,
    private readonly drainsBesideAStep: number,
  ) {}

  get active(): boolean {
    return this.generation !== undefined;
  }

  start(generation: number, source: string): { accepted: boolean; reason?: string } {
    if (this.generation !== undefined) return { accepted: false, reason: `reload to generation ${this.generation} in progress` };
    this.generation = generation;
    this.replaced = 0;
    this.startedAt = performance.now();
    this.log.info({ generation, source }, 'rolling reload started');
    return { accepted: true };
  }

  /** Called on every tick: the worker to retire now, if any. */
  step(handles: readonly WorkerHandle[]): WorkerHandle | undefined {
    const gen = this.generation;
    if (gen === undefined) return undefined;
    // One replacement at a time: wait until the one under way has its new worker listening (its
    // old one draining), and while more than `--reload-drains` old workers still drain.
    if (handles.some((h) => h.state === 'retiring' || h.state === 'stalling')) return undefined;
    const draining = handles.filter((h) => h.state === 'draining').length;
    if (draining > this.drainsBesideAStep) return undefined;
    const old = handles.find((h) => h.state === 'listening' && h.generation < gen);
    if (old) {
      this.log.info({ worker: old.slot, wid: old.id, workerPid: old.pid, generation: gen }, 'reload: replacing worker');
      return old;
    }
    // Complete only once every old worker has left, so `drover reload --wait` means "all new".
    if (draining > 0 || handles.some((h) => h.state === 'booting')) return undefined;
    this.completed++;
    this.log.info({ generation: gen, replaced: this.replaced, ms: Math.round(performance.now() - this.startedAt) }, 'rolling reload complete');
    this.generation = undefined;
    return undefined;
  }

  /** A replacement failed: the reload stops where it is (the supervisor keeps the retiring worker). */
  abort(why: string): void {
    if (this.generation === undefined) return;
    this.log.error({ generation: this.generation, why }, 'reload aborted; the previous generation keeps serving');
    this.aborted++;
    this.generation = undefined;
  }
}
