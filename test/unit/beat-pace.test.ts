/**
 * The primary's heartbeat pace (src/primary/beat-pace.ts) and how a worker's lateness is judged
 * against the pace its last beat announced. Pure state: time is passed in.
 */
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { describe, it } from 'node:test';
import { BeatPace } from '../../src/primary/beat-pace';
import { WorkerHandle } from '../../src/primary/worker-handle';
import type { HeartbeatMsg } from '../../src/protocol';

const opts = { fastMs: 20, idleMs: 100, quietMs: 1000 };

describe('heartbeat pace', () => {
  it('least-busy: fast while dispatching, idle after a quiet second, fast again on the next connection', () => {
    const told: number[] = [];
    const pace = new BeatPace({ ...opts, dispatchUsesBeats: true }, (ms) => told.push(ms), 0);
    assert.equal(pace.state, 'fast');
    assert.equal(pace.intervalMs, 20);
    pace.onDispatch(500);
    pace.tick(1400);
    assert.equal(pace.state, 'fast', 'a connection 900 ms ago keeps it fast');
    pace.tick(1500);
    assert.equal(pace.state, 'idle');
    assert.equal(pace.intervalMs, 100);
    pace.tick(5000);
    pace.onDispatch(6000);
    assert.equal(pace.state, 'fast');
    pace.onDispatch(6001);
    assert.deepEqual(told, [100, 20], 'workers told once per change');
    assert.equal(pace.changes, 2);
  });

  it('round-robin reads no heartbeats: idle from the start and for good', () => {
    const told: number[] = [];
    const pace = new BeatPace({ ...opts, dispatchUsesBeats: false }, (ms) => told.push(ms), 0);
    assert.equal(pace.intervalMs, 100);
    pace.onDispatch(10);
    pace.tick(20);
    pace.tick(5000);
    assert.equal(pace.state, 'idle');
    assert.deepEqual(told, []);
  });

  it('equal intervals: states still change, no message is sent', () => {
    const told: number[] = [];
    const pace = new BeatPace({ fastMs: 20, idleMs: 20, quietMs: 1000, dispatchUsesBeats: true }, (ms) => told.push(ms), 0);
    pace.tick(2000);
    pace.onDispatch(2001);
    assert.equal(pace.changes, 2);
    assert.deepEqual(told, []);
  });
});

describe('worker lateness', () => {
  const beat = (nextMs: number) => ({ type: 'drover:heartbeat', seq: 1, nextMs }) as HeartbeatMsg;

  it('is measured from the interval the last beat announced', () => {
    // The handle reads only the pid of the cluster worker it wraps.
    const h = new WorkerHandle({ process: { pid: 1 } } as unknown as Worker, 0, 1, 0);
    h.onBeat(beat(20), 1000);
    assert.equal(h.beatLateness(1010), -10);
    assert.equal(h.beatLateness(1060), 40);
    h.onBeat(beat(100), 2000);
    assert.equal(h.beatLateness(2060), -40, 'at the idle pace, 60 ms after a beat is not late');
    assert.equal(h.beatLateness(2140), 40);
    assert.equal(h.beatAge(2140), 140);
  });
});
