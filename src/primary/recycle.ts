import type { WorkerHandle } from './worker-handle';
import type { RetireReason } from './worker-lifecycle';

export type RecycleReason = Extract<RetireReason, 'memory' | 'max-requests'>;

export interface RecyclePolicy {
  /** RSS limit per worker in bytes; 0 = off. */
  maxRssBytes: number;
}

/**
 * Picks at most one worker to recycle now (replacement first, then drain, like a reload step).
 * One at a time, and never while anything else is being replaced (any worker not plainly
 * listening) or a reload runs: recycling all workers at once is an outage. A worker's request
 * limit is drawn at fork time (`--max-requests` + jitter) so workers started together do not
 * reach it together.
 */
export function pickRecycle(
  handles: readonly WorkerHandle[],
  policy: RecyclePolicy,
  reloading: boolean,
): { h: WorkerHandle; reason: RecycleReason; detail: Record<string, number> } | undefined {
  if (reloading || handles.some((h) => h.state !== 'listening')) return undefined;
  for (const h of handles) {
    if (!h.beat) continue;
    if (policy.maxRssBytes > 0 && h.beat.rssBytes > policy.maxRssBytes) {
      return { h, reason: 'memory', detail: { rssBytes: h.beat.rssBytes, maxRssBytes: policy.maxRssBytes } };
    }
    if (h.requestLimit !== undefined && h.beat.requests >= h.requestLimit) {
      return { h, reason: 'max-requests', detail: { requests: h.beat.requests, limit: h.requestLimit } };
    }
  }
  return undefined;
}
