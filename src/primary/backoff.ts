/**
 * Respawn delay after the k-th consecutive crash of a slot (k >= 1). The first respawn is
 * immediate: one crash is usually one bad request, and the slot's capacity is what users miss.
 * From the second on, the delay doubles from `baseMs` up to `maxMs`, so a crash loop costs
 * little CPU and log volume while it lasts.
 */
export function respawnDelay(k: number, baseMs: number, maxMs: number): number {
  if (k <= 1) return 0;
  return Math.min(maxMs, baseMs * 2 ** (k - 2));
}

/** One worker slot's restart history. */
export class SlotState {
  /** Consecutive failed exits; a long enough uptime before one starts the count again. */
  crashes = 0;
  /** performance.now() before which the slot is not respawned. */
  nextSpawnAt = 0;

  /** Records a failed exit after `upMs` of serving; returns the respawn delay it brings. */
  failed(now: number, upMs: number, o: { restartResetMs: number; restartDelayMs: number; restartDelayMaxMs: number }): number {
    this.crashes = upMs >= o.restartResetMs ? 1 : this.crashes + 1;
    const delay = respawnDelay(this.crashes, o.restartDelayMs, o.restartDelayMaxMs);
    this.nextSpawnAt = now + delay;
    return delay;
  }
}
