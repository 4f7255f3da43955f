/**
 * The pressure sensor (@fastify/under-pressure) runs only while requests come: its 10 ms delay
 * monitor would otherwise wake an idle worker 100 times a second (issue 19). Real timers, short
 * idle window; waits poll the sensor's state, bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdleStoppingSensor } from '../../src/worker/pressure-gate';

const SHED = { loopDelayMs: 500, utilization: 1, heapBytes: 0, rssBytes: 0, exempt: [] };

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('IdleStoppingSensor', () => {
  it('runs after start, keeps running while used, stops when unused, and restarts on the next use', async () => {
    const s = new IdleStoppingSensor(SHED, 300, 50);
    await s.start();
    assert.equal(s.running, true);
    assert.ok(s.usage(), 'a running sensor gives a reading');
    assert.equal((s as unknown as { histograms: unknown[] }).histograms.length, 1, 'under-pressure\'s delay histogram was seen');
    // Used every 20 ms for 600 ms (twice the idle window): it stays up.
    const usedUntil = Date.now() + 600;
    while (Date.now() < usedUntil) {
      assert.equal(s.running, true, 'stopped while in use');
      s.usage();
      await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => !s.running, 'the unused sensor stops');
    const h = (s as unknown as { histograms: unknown[] }).histograms;
    assert.equal(h.length, 0, 'its delay histogram is disabled and dropped');
    assert.equal(s.usage(), undefined, 'a stopped sensor has no reading (and starts again)');
    await until(() => s.running, 'the sensor restarts after a use');
    const m = s.usage();
    assert.ok(m && m.eventLoopDelay >= 0);
    await s.stop();
    assert.equal(s.running, false);
  });
});
