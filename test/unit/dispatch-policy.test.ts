import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { choose, type Candidate } from '../../src/primary/dispatch-policy';

interface W extends Candidate {
  name: string;
}
/** `late`: how long ago the worker's next heartbeat was due (negative: not due yet). */
const w = (name: string, load: number, late: number, serving = true, pendingHandoffs = 0, freeSince = 0): W => ({
  name,
  serving,
  pendingHandoffs,
  freeSince,
  load: () => load,
  beatLateness: () => late,
});

describe('dispatch policy', () => {
  it('least-busy picks the fresh worker with the lowest load', () => {
    const ws = [w('a', 3, 10), w('b', 1, 10), w('c', 2, 10)];
    assert.equal(choose(ws, 'least-busy', 40, 0, 0)?.worker.name, 'b');
  });

  it('skips stale workers even when they look idle (a just-blocked worker reports 0 in flight)', () => {
    const ws = [w('blocked', 0, 500), w('busy', 4, 5)];
    const c = choose(ws, 'least-busy', 40, 0, 0)!;
    assert.equal(c.worker.name, 'busy');
    assert.equal(c.allStale, false);
  });

  it('falls back to the least stale worker when all are stale, and says so', () => {
    const ws = [w('a', 0, 900), w('b', 0, 300), w('c', 0, 700)];
    const c = choose(ws, 'least-busy', 40, 0, 0)!;
    assert.equal(c.worker.name, 'b');
    assert.equal(c.allStale, true);
  });

  it('never picks a worker that is not serving (booting, draining, stalling)', () => {
    const ws = [w('draining', 0, 1, false), w('ok', 9, 1)];
    for (let cursor = 0; cursor < 4; cursor++) assert.equal(choose(ws, 'least-busy', 40, 0, cursor)?.worker.name, 'ok');
    for (let cursor = 0; cursor < 4; cursor++) assert.equal(choose(ws, 'round-robin', 40, 0, cursor)?.worker.name, 'ok');
    assert.equal(choose([w('x', 0, 1, false)], 'least-busy', 40, 0, 0), undefined);
    assert.equal(choose([], 'round-robin', 40, 0, 0), undefined);
  });

  it('breaks ties round-robin so equal workers share evenly', () => {
    const ws = [w('a', 0, 1), w('b', 0, 1), w('c', 0, 1)];
    const counts: Record<string, number> = {};
    for (let cursor = 0; cursor < 300; cursor++) {
      const name = choose(ws, 'least-busy', 40, 0, cursor)!.worker.name;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    assert.deepEqual(counts, { a: 100, b: 100, c: 100 });
  });

  it('a worker is fresh up to the grace past its announced next beat, stale after', () => {
    assert.equal(choose([w('idle', 0, 40), w('busy', 3, -10)], 'least-busy', 40, 0, 0)?.worker.name, 'idle');
    assert.equal(choose([w('late', 0, 41), w('busy', 3, -10)], 'least-busy', 40, 0, 0)?.worker.name, 'busy');
  });

  it('round-robin (Node\'s policy) ignores load and staleness, and serves the worker free the longest first', () => {
    const ws = [w('a', 50, 5000, true, 0, 30), w('b', 0, 1, true, 0, 10), w('c', 0, 1, true, 0, 20)];
    for (let cursor = 0; cursor < 3; cursor++) assert.equal(choose(ws, 'round-robin', 40, 0, cursor)?.worker.name, 'b');
    assert.equal(choose([w('stale', 50, 5000, true, 0, 5), w('fresh', 0, 1, true, 0, 6)], 'round-robin', 40, 0, 0)?.worker.name, 'stale');
  });

  it('round-robin waits for the ack: a worker owing one gets nothing, and none free means no choice (queue)', () => {
    const ws = [w('owes', 0, 1, true, 1, 0), w('free', 9, 1, true, 0, 50)];
    for (let cursor = 0; cursor < 2; cursor++) assert.equal(choose(ws, 'round-robin', 40, 0, cursor)?.worker.name, 'free');
    assert.equal(choose([w('a', 0, 1, true, 1), w('b', 0, 1, true, 2)], 'round-robin', 40, 0, 0), undefined);
  });

  it('round-robin over workers freed at the same moment takes turns by cursor', () => {
    const ws = [w('a', 0, 1), w('b', 0, 1)];
    assert.equal(choose(ws, 'round-robin', 40, 0, 0)?.worker.name, 'a');
    assert.equal(choose(ws, 'round-robin', 40, 0, 1)?.worker.name, 'b');
  });
});
