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
