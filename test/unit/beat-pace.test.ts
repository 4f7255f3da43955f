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

const opts = { fastMs: 20, idleMs: 100, sleepMs: 1000, quietMs: 1000, sleepAfterMs: 10_000 };

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

  it('equal intervals: the workers are told only that fewer beats are sent, and again that all are', () => {
    const told: [number, number][] = [];
    const pace = new BeatPace({ ...opts, fastMs: 20, idleMs: 20, dispatchUsesBeats: true }, (ms, report) => told.push([ms, report]), 0);
    pace.tick(2000);
    pace.onDispatch(2001);
    assert.equal(pace.changes, 2);
    assert.deepEqual(told, [[20, 1000], [20, 20]]);
  });

  it('beats are sent once a second unless fast, and only then does dispatch trust them without a fresh one', () => {
    const told: [number, number][] = [];
    const pace = new BeatPace({ ...opts, dispatchUsesBeats: true }, (ms, report) => told.push([ms, report]), 0);
    assert.equal(pace.reportMs, 20);
    assert.equal(pace.holdsFirstConnection, false);
    pace.tick(1000);
    assert.equal(pace.state, 'idle');
    assert.equal(pace.reportMs, 1000, 'keep-alive traffic: beats every 100 ms, one a second sent');
    assert.equal(pace.holdsFirstConnection, true);
    pace.tick(11_000);
    assert.equal(pace.state, 'asleep');
    assert.equal(pace.reportMs, 1000);
    assert.equal(pace.holdsFirstConnection, true);
    pace.onDispatch(11_500);
    assert.equal(pace.holdsFirstConnection, false);
    assert.deepEqual(told, [[100, 1000], [1000, 1000], [20, 20]]);
    // Round-robin reads no beats: nothing to hold for, whatever the pace.
    const rr = new BeatPace({ ...opts, dispatchUsesBeats: false }, () => {}, 0);
    assert.equal(rr.reportMs, 1000);
    assert.equal(rr.holdsFirstConnection, false);
  });

  it('asleep after 10 s without a connection or a request; keep-alive traffic keeps it idle; a connection makes it fast', () => {
    const told: number[] = [];
    const pace = new BeatPace({ ...opts, dispatchUsesBeats: true }, (ms) => told.push(ms), 0);
    pace.tick(1000);
    assert.equal(pace.state, 'idle');
    pace.tick(9000, true); // keep-alive requests served: no new connection, but traffic
    pace.tick(15_000);
    assert.equal(pace.state, 'idle', 'requests 6 s ago keep it awake');
    pace.tick(19_000);
    assert.equal(pace.state, 'asleep');
    assert.equal(pace.intervalMs, 1000);
    pace.tick(20_000, true);
    assert.equal(pace.state, 'idle', 'keep-alive traffic wakes it to idle (no connection to place)');
    pace.tick(31_000);
    assert.equal(pace.state, 'asleep');
    pace.onDispatch(31_500);
    assert.equal(pace.state, 'fast');
    assert.deepEqual(told, [100, 1000, 100, 1000, 20]);
    assert.equal(pace.trustedIntervalMs, 100, 'a beat announced at the sleep interval is judged as if idle');
  });

  it('round-robin sleeps and wakes to idle', () => {
    const told: number[] = [];
    const pace = new BeatPace({ ...opts, dispatchUsesBeats: false }, (ms) => told.push(ms), 0);
    pace.tick(10_000);
    assert.equal(pace.state, 'asleep');
    pace.onDispatch(10_500);
    assert.equal(pace.state, 'idle');
    assert.deepEqual(told, [1000, 100]);
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
    h.onBeat(beat(1000), 3000);
    assert.equal(h.beatLateness(3400), -600, 'asleep, by its own word');
    assert.equal(h.beatLateness(3400, 100), 300, 'judged as if announced at the idle pace: stale for dispatch');
  });

  it('for the stall check, allows for the beats a worker said it would not send', () => {
    const h = new WorkerHandle({ process: { pid: 1 } } as unknown as Worker, 0, 1, 0);
    h.onBeat({ ...beat(1000), beatMs: 100 }, 1000);
    assert.equal(h.beatAge(12_000), 11_000);
    assert.equal(h.silentFor(12_000), 10_100, 'silent since its last unsent beat, at most 100 ms before the one due');
    h.onBeat(beat(1000), 20_000);
    assert.equal(h.silentFor(21_000), 1000, 'asleep: every beat it beats is sent');
    h.onBeat(beat(20), 30_000);
    assert.equal(h.silentFor(30_500), 500);
  });
});
