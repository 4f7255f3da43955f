import { performance } from 'node:perf_hooks';
import type { Logger } from '../log';
import type { WorkerHandle } from './worker-handle';

/**
 * Rolling reload, one worker at a time: mark the next old-generation worker `retiring`; its slot
 * is then uncovered, so the supervisor's tick forks the replacement; when that one listens, the
 * supervisor drains the retiring one; the next step picks the next old worker. A replacement that
 * fails to come up aborts the reload and the old generation keeps serving.
 */
export class RollingReload {
  /** The generation being rolled out, while a reload runs. */
  generation: number | undefined;
  replaced = 0;
  completed = 0;
  aborted = 0;
  private startedAt = 0;

  constructor(private readonly log: Logger) {}

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

  /** Called on every tick. */
  step(handles: readonly WorkerHandle[]): void {
    const gen = this.generation;
    if (gen === undefined) return;
    if (handles.some((h) => h.retiring === 'reload')) return;
    const old = handles.find((h) => h.phase === 'listening' && h.generation < gen);
    if (old) {
      old.retiring = 'reload';
      this.log.info({ worker: old.slot, wid: old.id, workerPid: old.pid, generation: gen }, 'reload: replacing worker');
      return;
    }
    if (handles.some((h) => h.phase === 'booting')) return;
    this.completed++;
    this.log.info({ generation: gen, replaced: this.replaced, ms: Math.round(performance.now() - this.startedAt) }, 'rolling reload complete');
    this.generation = undefined;
  }

  abort(handles: readonly WorkerHandle[], why: string): void {
    if (this.generation === undefined) return;
    this.log.error({ generation: this.generation, why }, 'reload aborted; the previous generation keeps serving');
    for (const h of handles) if (h.retiring === 'reload') h.retiring = undefined;
    this.aborted++;
    this.generation = undefined;
  }
}
