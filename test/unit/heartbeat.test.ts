/**
 * The worker's heartbeat measures loop delay from its own timer's lateness (no separate
 * monitorEventLoopDelay). Real timers and a really blocked loop: this process's own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeartbeatMsg, LoopStats } from '../../src/protocol';
import { Heartbeat } from '../../src/worker/heartbeat';

const idle = () => ({ inFlight: 0, connections: 0, requests: 0, adopted: 0 });

/** Starts a heartbeat; `nextSummary()` resolves with the loop stats of the next 1 s summary. */
function beating(intervalMs: number) {
  let last: LoopStats | undefined;
  let waiter: ((l: LoopStats) => void) | undefined;
  const hb = new Heartbeat(intervalMs, idle, (m: HeartbeatMsg) => {
    // A summary replaces the loop object; beats in between carry the same one.
    if (last !== undefined && m.loop !== last) waiter?.(m.loop);
    last = m.loop;
  });
  hb.start();
  // The beat's timer is unref'd (it never keeps a worker alive); this keeps the test's loop up.
  const keep = setInterval(() => {}, 1000);
  return {
    nextSummary: () => new Promise<LoopStats>((resolve) => (waiter = resolve)),
    stop: () => {
      hb.stop();
      clearInterval(keep);
    },
  };
}

describe('heartbeat loop delay', () => {
  it('reads near zero on an idle loop and shows a blocked loop in the next summary', async () => {
    const hb = beating(20);
    try {
      const quiet = await hb.nextSummary();
      // Generous: a busy CI machine delays timers too, but not by a block's length.
      assert.ok(quiet.delayMaxMs < 150, `idle max ${quiet.delayMaxMs} ms`);
      assert.ok(quiet.delayP50Ms < 50, `idle p50 ${quiet.delayP50Ms} ms`);
      assert.ok(quiet.delayP50Ms <= quiet.delayP99Ms && quiet.delayP99Ms <= quiet.delayMaxMs);
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // hold the loop: the beat due within 20 ms fires ~280 ms or more late
      }
      const blocked = await hb.nextSummary();
      assert.ok(blocked.delayMaxMs >= 250, `max after a 300 ms block: ${blocked.delayMaxMs} ms`);
      assert.ok(blocked.utilization > 0.2, `utilization ${blocked.utilization}`);
    } finally {
      hb.stop();
    }
  });

  it('still samples with a long interval (one beat per window)', async () => {
    const hb = beating(400);
    try {
      await hb.nextSummary();
      const until = Date.now() + 700;
      while (Date.now() < until) {
        // a block longer than the interval: the pending beat fires ~300 ms late
      }
      const blocked = await hb.nextSummary();
      assert.ok(blocked.delayMaxMs >= 250, `max ${blocked.delayMaxMs} ms`);
    } finally {
      hb.stop();
    }
  });
});
