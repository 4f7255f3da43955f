/**
 * The worker's heartbeat measures loop delay from its own timer's lateness (no separate
 * monitorEventLoopDelay). Real timers and a really blocked loop: this process's own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeartbeatMsg, LoopStats } from '../../src/protocol';
import { Heartbeat } from '../../src/worker/heartbeat';

const idle = () => ({ inFlight: 0, connections: 0, upgraded: 0, requests: 0, adopted: 0 });

/** Starts a heartbeat; `nextSummary()` resolves with the loop stats of the next 1 s summary. */
function beating(intervalMs: number) {
  let last: LoopStats | undefined;
  let waiter: ((l: LoopStats) => void) | undefined;
  const hb = new Heartbeat(intervalMs, undefined, idle, (m: HeartbeatMsg) => {
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

describe('heartbeat pace', () => {
  it('beats at once on a new interval, announces it in every beat, and keeps to it', async () => {
    const beats: { at: number; nextMs: number }[] = [];
    let waiter: { n: number; resolve: () => void } | undefined;
    const hb = new Heartbeat(20, undefined, idle, (m: HeartbeatMsg) => {
      beats.push({ at: performance.now(), nextMs: m.nextMs });
      if (waiter && beats.length >= waiter.n) waiter.resolve();
    });
    const count = (n: number) => new Promise<void>((resolve) => (beats.length >= n ? resolve() : (waiter = { n, resolve })));
    const keep = setInterval(() => {}, 1000);
    try {
      hb.start();
      await count(3);
      assert.ok(beats.every((b) => b.nextMs === 20));

      const before = beats.length;
      hb.setPace(200);
      assert.equal(beats.length, before + 1, 'a beat is sent at once');
      assert.equal(beats.at(-1)!.nextMs, 200);
      hb.setPace(200);
      assert.equal(beats.length, before + 1, 'the same interval again sends nothing');
      await count(before + 3);
      const slow = beats.slice(before);
      for (let i = 1; i < slow.length; i++) {
        // Timers fire late, never early (bar the millisecond rounding).
        assert.ok(slow[i]!.at - slow[i - 1]!.at >= 195, `gap ${slow[i]!.at - slow[i - 1]!.at} ms at the 200 ms pace`);
        assert.equal(slow[i]!.nextMs, 200);
      }

      const fastFrom = beats.length;
      const t0 = performance.now();
      hb.setPace(20);
      assert.equal(beats.length, fastFrom + 1, 'speeding up beats at once too');
      assert.equal(beats.at(-1)!.nextMs, 20);
      await count(fastFrom + 6);
      // Five more beats at 20 ms take ~100 ms; at the old pace they would take 1 s.
      assert.ok(performance.now() - t0 < 900, `five fast beats took ${performance.now() - t0} ms`);

      // Stopped (a draining worker): a pace change does not start it again.
      hb.stop();
      const stoppedAt = beats.length;
      hb.setPace(200);
      assert.equal(beats.length, stoppedAt, 'no beat after stop()');
    } finally {
      hb.stop();
      clearInterval(keep);
    }
  });

  it('at a report interval beats for its own watch every interval and sends one beat of N, announcing both', async () => {
    const sent: HeartbeatMsg[] = [];
    let local = 0;
    let waiter: { n: number; resolve: () => void } | undefined;
    const hb = new Heartbeat(20, 100, idle, (m: HeartbeatMsg) => {
      sent.push(m);
      if (waiter && sent.length >= waiter.n) waiter.resolve();
    }, () => void local++);
    const count = (n: number) => new Promise<void>((resolve) => (sent.length >= n ? resolve() : (waiter = { n, resolve })));
    const keep = setInterval(() => {}, 1000);
    try {
      hb.start();
      await count(4);
      // The first beat goes out at start; after it one of every five (100 / 20).
      assert.equal(local, 16, `${local} local beats for ${sent.length} sent`);
      for (const m of sent) {
        assert.equal(m.nextMs, 100);
        assert.equal(m.beatMs, 20);
      }

      // Every beat sent again (the fast pace): at once, and no beatMs.
      const before = sent.length;
      hb.setPace(20);
      assert.equal(sent.length, before + 1, 'a pace change sends a beat at once');
      await count(before + 4);
      for (const m of sent.slice(before)) {
        assert.equal(m.nextMs, 20);
        assert.equal(m.beatMs, undefined);
      }
    } finally {
      hb.stop();
      clearInterval(keep);
    }
  });
});
