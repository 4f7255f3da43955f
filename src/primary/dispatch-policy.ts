import type { DispatchMode } from '../options';

/** What the policy needs of a worker; WorkerHandle satisfies it, tests pass plain objects. */
export interface Candidate {
  serving: boolean;
  beatAge(now: number): number;
  load(): number;
}

export interface Choice<T> {
  worker: T;
  /** No serving worker had a fresh heartbeat: we fell back to the least stale one. */
  allStale: boolean;
}

/**
 * Pure choice of a worker for one new connection.
 *
 * least-busy: among serving workers with a heartbeat younger than `freshnessMs`, the one with the
 * lowest load; ties go round-robin from `cursor`, so equal workers share evenly. A worker that
 * just started a long request stops beating within one interval and drops out here, which is
 * what Node's round-robin cannot see (it only waits for the previous handoff's ack).
 * If every worker is stale, the least stale one gets it: queueing forever helps nobody.
 *
 * round-robin: serving workers in turn, heartbeat ignored (Node's own policy, for comparison).
 */
export function choose<T extends Candidate>(
  workers: readonly T[],
  mode: DispatchMode,
  freshnessMs: number,
  now: number,
  cursor: number,
): Choice<T> | undefined {
  const n = workers.length;
  if (n === 0) return undefined;
  let best: T | undefined;
  let bestLoad = Infinity;
  let leastStale: T | undefined;
  let leastStaleAge = Infinity;
  for (let k = 0; k < n; k++) {
    const w = workers[(cursor + k) % n]!;
    if (!w.serving) continue;
    if (mode === 'round-robin') return { worker: w, allStale: false };
    const age = w.beatAge(now);
    if (age <= freshnessMs) {
      const load = w.load();
      if (load < bestLoad) {
        best = w;
        bestLoad = load;
      }
    } else if (age < leastStaleAge) {
      leastStale = w;
      leastStaleAge = age;
    }
  }
  if (best) return { worker: best, allStale: false };
  if (leastStale) return { worker: leastStale, allStale: true };
  return undefined;
}
