import type { DispatchMode } from '../options';

/** What the policy needs of a worker; WorkerHandle satisfies it, tests pass plain objects. */
export interface Candidate {
  serving: boolean;
  /** Connections handed to it that it has not acknowledged yet (round-robin waits for 0). */
  readonly pendingHandoffs: number;
  /** When it last became free of unacknowledged handoffs (round-robin serves the longest free first). */
  readonly freeSince: number;
  /**
   * How long ago its next heartbeat was due (negative: not due yet), judged by the interval its
   * last beat announced, or `trustedIntervalMs` if that is shorter.
   */
  beatLateness(now: number, trustedIntervalMs?: number): number;
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
 * least-busy: among serving workers whose next heartbeat is at most `lateGraceMs` overdue (fresh),
 * the one with the lowest load; ties go round-robin from `cursor`, so equal workers share evenly.
 * A worker that just started a long request stops beating and drops out here once its next beat
 * is that late, which is what Node's round-robin cannot see (it only waits for the previous
 * handoff's ack). If every worker is stale, the least late one gets it: queueing forever helps
 * nobody.
 *
 * round-robin: Node's own policy (lib/internal/cluster/round_robin_handle.js), so that comparing
 * the two compares drover with node:cluster: heartbeat and load ignored, but a worker gets a new
 * connection only once it has acknowledged its previous one, and the worker free the longest goes
 * first. When every serving worker still owes an ack, there is no choice: the connection waits in
 * the dispatcher's queue until an ack frees a worker, as it waits in node:cluster's primary. A
 * blocked worker therefore holds at most one waiting connection (ADR 0012).
 */
export function choose<T extends Candidate>(
  workers: readonly T[],
  mode: DispatchMode,
  lateGraceMs: number,
  now: number,
  cursor: number,
  /** Beats announced at a longer interval (the sleep pace) count as if announced at this one. */
  trustedIntervalMs = Infinity,
): Choice<T> | undefined {
  const n = workers.length;
  if (n === 0) return undefined;
  let best: T | undefined;
  let bestLoad = Infinity;
  let leastStale: T | undefined;
  let leastStaleLateness = Infinity;
  let longestFree = Infinity;
  for (let k = 0; k < n; k++) {
    const w = workers[(cursor + k) % n]!;
    if (!w.serving) continue;
    if (mode === 'round-robin') {
      if (w.pendingHandoffs === 0 && w.freeSince < longestFree) {
        best = w;
        longestFree = w.freeSince;
      }
      continue;
    }
    const late = w.beatLateness(now, trustedIntervalMs);
    if (late <= lateGraceMs) {
      const load = w.load();
      if (load < bestLoad) {
        best = w;
        bestLoad = load;
      }
    } else if (late < leastStaleLateness) {
      leastStale = w;
      leastStaleLateness = late;
    }
  }
  if (best) return { worker: best, allStale: false };
  if (leastStale) return { worker: leastStale, allStale: true };
  return undefined;
}
