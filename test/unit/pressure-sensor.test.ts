/**
 * The pressure sensor (@fastify/under-pressure) runs only while requests come: its 10 ms delay
 * monitor would otherwise wake an idle worker 100 times a second (issue 19). Real timers, short
 * idle window; waits poll the sensor's state, bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdleStoppingSensor } from '../../src/worker/pressure-gate';

/** drover's default: the loop-delay limit alone, so the sensor is dormant until the loop is late. */
const SHED = { loopDelayMs: 500, utilization: 1, heapBytes: 0, rssBytes: 0, exempt: [] };
/** With a heap limit too, a late loop is no sign: the sensor runs whenever requests come. */
const WITH_HEAP = { ...SHED, heapBytes: 2 ** 30 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('IdleStoppingSensor', () => {
  it('runs after start, keeps running while used, stops when unused, and restarts on the next use', async () => {
    const s = new IdleStoppingSensor(WITH_HEAP, 300, 50);
    assert.equal(s.dormant, false);
    await s.start();
    assert.equal(s.running, true);
    assert.ok(s.usage(), 'a running sensor gives a reading');
    assert.equal((s as unknown as { histograms: unknown[] }).histograms.length, 1, 'under-pressure\'s delay histogram was seen');
    // Used every 20 ms for 600 ms (twice the idle window): it stays up.
    const usedUntil = Date.now() + 600;
    while (Date.now() < usedUntil) {
      assert.equal(s.running, true, 'stopped while in use');
      s.usage();
      await sleep(20);
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

  it('with the delay limit alone it is dormant: requests do not start it, a beat late by half the limit does, and it stops when the loop keeps time', async () => {
    const s = new IdleStoppingSensor(SHED, 300, 50);
    assert.equal(s.dormant, true);
    for (let i = 0; i < 10; i++) {
      assert.equal(s.usage(), undefined);
      await sleep(20);
    }
    assert.equal(s.running, false, 'requests alone did not start it');
    s.loopLate(249);
    await sleep(100);
    assert.equal(s.running, false, 'a beat 249 ms late is under half of the 500 ms limit');
    s.loopLate(250);
    await until(() => s.running, 'a beat 250 ms late starts the sensor');
    assert.ok(s.usage(), 'the running sensor gives a reading');
    // Requests keep coming but no beat is late again: it stops after the 300 ms window.
    const deadline = Date.now() + 3000;
    while (s.running && Date.now() < deadline) {
      s.usage();
      await sleep(20);
    }
    assert.equal(s.running, false, 'it stopped while requests came, the loop keeping time');
    assert.equal((s as unknown as { histograms: unknown[] }).histograms.length, 0, 'its delay histogram is disabled');
    await s.stop();
  });
});
