/**
 * The rolling reload's pace (src/primary/reload.ts): which old worker a tick retires, given the
 * workers' states, as a table. The supervisor carries the retirement out (tested end to end in
 * test/integration/reload.test.ts).
 */
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { describe, it } from 'node:test';
import pino from 'pino';
import { RollingReload } from '../../src/primary/reload';
import { WorkerHandle } from '../../src/primary/worker-handle';
import type { WorkerState } from '../../src/primary/worker-lifecycle';

const silent = pino({ enabled: false });

/** A worker of this generation in this state (slot = its place in the list). */
function worker(state: WorkerState, generation: number, slot: number): WorkerHandle {
  const h = new WorkerHandle({ id: slot + 1, process: { pid: 100 + slot } } as unknown as Worker, slot, generation, 0);
  h.life = { ...h.life, state };
  return h;
}

type W = [WorkerState, number];

/**
 * (title, `--reload-drains`, workers as [state, generation], reloading to generation 2) → the slot
 * retired, or undefined; and whether the reload completed.
 */
const CASES: [string, number, W[], number | undefined, boolean][] = [
  ['the first step retires the first old worker', 1, [['listening', 1], ['listening', 1], ['listening', 1]], 0, false],
  ['a step under way (old retiring, replacement booting) holds the next', 1, [['retiring', 1], ['listening', 1], ['booting', 2]], undefined, false],
  ['its replacement listens and the old one drains: the next step starts beside that drain', 1, [['draining', 1], ['listening', 1], ['listening', 1], ['listening', 2]], 1, false],
  ['two drains under way: the next step waits for one to end', 1, [['draining', 1], ['draining', 1], ['listening', 1], ['listening', 2], ['listening', 2]], undefined, false],
  ['--reload-drains 0: the next step waits for the one drain', 0, [['draining', 1], ['listening', 1], ['listening', 2]], undefined, false],
  ['--reload-drains 2: a third step starts beside two drains', 2, [['draining', 1], ['draining', 1], ['listening', 1], ['listening', 2], ['listening', 2]], 2, false],
  ['a stalling worker holds the reload', 1, [['stalling', 1], ['listening', 1], ['listening', 2]], undefined, false],
  ['every old worker replaced, one still draining: not complete yet', 1, [['draining', 1], ['listening', 2], ['listening', 2]], undefined, false],
  ['every old worker replaced, a worker still booting: not complete yet', 1, [['listening', 2], ['booting', 2]], undefined, false],
  ['every old worker gone: complete', 1, [['listening', 2], ['listening', 2]], undefined, true],
];

describe('rolling reload: one step at a time, beside at most --reload-drains drains', () => {
  for (const [title, drains, ws, retired, complete] of CASES) {
    it(title, () => {
      const r = new RollingReload(silent, drains);
      assert.deepEqual(r.start(2, 'test'), { accepted: true });
      const handles = ws.map(([state, gen], slot) => worker(state, gen, slot));
      assert.equal(r.step(handles)?.slot, retired);
      assert.equal(r.active, !complete);
      assert.equal(r.completed, complete ? 1 : 0);
    });
  }

  it('a second reload is refused while one runs', () => {
    const r = new RollingReload(silent, 1);
    r.start(2, 'test');
    assert.deepEqual(r.start(3, 'test'), { accepted: false, reason: 'reload to generation 2 in progress' });
  });
});
