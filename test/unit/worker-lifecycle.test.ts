/**
 * A worker's lifecycle as a table of (state, event) → (next state, actions), the way gunicorn's
 * arbiter is tested: plain data in, plain data out, no process. Actions are shown as short strings
 * so a row reads as one decision.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  BORN, DRAIN_REASONS, EXIT_REASONS, RETIRE_REASONS, SIGNAL_SETTLE_MS, WORKER_STATES, overdue, step,
  type Life, type LifeAction, type LifeEvent, type WorkerState,
} from '../../src/primary/worker-lifecycle';

const T = { bootTimeoutMs: 30_000, workerTimeoutMs: 10_000, killGraceMs: 5_000, drainTimeoutMs: 30_000 };

/** A life in `state`; it listened unless it is booting or was stopped at boot. */
function life(state: WorkerState, more: Partial<Life> = {}): Life {
  return { ...BORN, state, listened: state !== 'booting' && state !== 'stopping', ...more };
}

function show(a: LifeAction): string {
  switch (a.kind) {
    case 'log':
      return `log ${a.level}: ${a.msg}`;
    case 'kill':
      return `kill ${a.signal}`;
    case 'deadline':
      return `deadline ${a.ms}`;
    case 'drain':
      return `drain ${a.reason}`;
    case 'replacement-failed':
      return `replacement-failed: ${a.why}`;
    case 'exited':
      return `exited ${a.reason} (${a.level})`;
    default:
      return a.kind;
  }
}

const TERM = ['kill SIGTERM', 'deadline 5000'];
const REFUSED = 'log error: worker speaks another protocol version (forked from newer files?); refusing it';
const LATE_BOOT = 'log error: worker did not listen in time; killing it';
const STILL_THERE = 'log warn: worker still running after --kill-grace; SIGKILL';

type Row = [from: Life, event: LifeEvent, to: WorkerState, actions: string[], after?: Partial<Life>];

const hello = (protocol: number): LifeEvent => ({ kind: 'hello', protocol, expected: 2 });
const exit = (code: number | null, signal: string | null = null): LifeEvent => ({ kind: 'exit', code, signal });

const rows: Row[] = [
  // booting
  [life('booting'), hello(2), 'booting', []],
  [life('booting'), hello(3), 'stopping', [REFUSED, 'reject-protocol', 'replacement-failed: protocol version mismatch', ...TERM], { reason: 'app-error', appError: 'protocol version mismatch' }],
  [life('booting'), { kind: 'listening' }, 'listening', ['serving'], { listened: true }],
  [life('booting'), { kind: 'boot-timeout' }, 'stopping', [LATE_BOOT, 'replacement-failed: new worker did not listen within 30000ms', ...TERM], { reason: 'boot-timeout' }],
  [life('booting'), { kind: 'app-error', message: 'boom' }, 'booting', [], { appError: 'boom' }],
  [life('booting'), { kind: 'shutdown' }, 'stopping', TERM, { reason: 'shutdown' }],
  [life('booting'), { kind: 'stall' }, 'booting', []],
  [life('booting'), { kind: 'retire', reason: 'reload' }, 'booting', []],
  [life('booting'), { kind: 'signal', at: 5 }, 'booting', [], { signalledAt: 5 }],
  // listening
  [life('listening'), hello(3), 'listening', []],
  [life('listening'), { kind: 'stall' }, 'stalling', ['log-stall', 'respawn', ...TERM], { reason: 'stalled' }],
  [life('listening'), { kind: 'signal', at: 100 }, 'listening', [], { signalledAt: 100 }],
  [life('listening', { signalledAt: 100 }), { kind: 'signal', at: 200 }, 'listening', [], { signalledAt: 100 }],
  [life('listening', { signalledAt: 100 }), { kind: 'signal-settled' }, 'retiring', ['log info: worker was signalled; replacing it'], { reason: 'recycle' }],
  [life('listening'), { kind: 'retire', reason: 'memory' }, 'retiring', [], { reason: 'memory' }],
  [life('listening'), { kind: 'replaced' }, 'listening', []],
  [life('listening'), { kind: 'shutdown' }, 'draining', ['drain shutdown', 'deadline 35000'], { reason: 'shutdown' }],
  [life('listening'), { kind: 'force' }, 'stopping', ['kill SIGKILL'], { reason: 'shutdown' }],
  [life('listening'), { kind: 'deadline' }, 'listening', []],
  [life('listening'), { kind: 'boot-timeout' }, 'listening', []],
  // retiring: serves until its replacement listens
  [life('retiring', { reason: 'reload' }), { kind: 'replaced' }, 'draining', ['drain reload', 'deadline 35000'], { reason: 'reload' }],
  [life('retiring', { reason: 'max-requests' }), { kind: 'replaced' }, 'draining', ['drain max-requests', 'deadline 35000']],
  [life('retiring', { reason: 'reload' }), { kind: 'keep' }, 'listening', [], { reason: undefined }],
  [life('retiring', { reason: 'reload' }), { kind: 'stall' }, 'stalling', ['log-stall', 'respawn', ...TERM], { reason: 'stalled' }],
  [life('retiring', { reason: 'reload' }), { kind: 'shutdown' }, 'draining', ['drain shutdown', 'deadline 35000'], { reason: 'shutdown' }],
  [life('retiring', { reason: 'recycle', signalledAt: 1 }), { kind: 'signal-settled' }, 'retiring', []],
  [life('retiring', { reason: 'reload' }), { kind: 'retire', reason: 'memory' }, 'retiring', [], { reason: 'reload' }],
  // draining
  [life('draining', { reason: 'reload' }), { kind: 'drained' }, 'draining', []],
  [life('draining', { reason: 'reload' }), { kind: 'deadline' }, 'draining', ['log error: worker overran its drain deadline; SIGKILL', 'kill SIGKILL']],
  [life('draining', { reason: 'reload' }), { kind: 'stall' }, 'draining', []],
  [life('draining', { reason: 'reload' }), { kind: 'shutdown' }, 'draining', [], { reason: 'reload' }],
  [life('draining', { reason: 'shutdown' }), { kind: 'force' }, 'stopping', ['kill SIGKILL'], { reason: 'shutdown' }],
  // stalling and stopping: SIGKILL only once the grace is over
  [life('stalling', { reason: 'stalled' }), { kind: 'deadline' }, 'stalling', [STILL_THERE, 'kill SIGKILL']],
  [life('stalling', { reason: 'stalled' }), { kind: 'shutdown' }, 'stalling', []],
  [life('stalling', { reason: 'stalled' }), { kind: 'signal', at: 9 }, 'stalling', [], { signalledAt: undefined }],
  [life('stopping', { reason: 'boot-timeout' }), { kind: 'deadline' }, 'stopping', [STILL_THERE, 'kill SIGKILL']],
  [life('stopping', { reason: 'boot-timeout' }), { kind: 'listening' }, 'stopping', []],
  // exits: the reason, and what it means for the slot and the fleet
  [life('listening'), exit(null, 'SIGKILL'), 'stopped', ['exited crash (error)', 'backoff']],
  [life('booting'), exit(1), 'stopped', ['exited crash (error)', 'replacement-failed: new worker exited during boot (code 1, signal null)', 'boot-failed', 'backoff']],
  [life('booting', { appError: 'boom' }), exit(3), 'stopped', ['exited app-error (error)', 'replacement-failed: boom', 'app-failed', 'boot-failed', 'backoff']],
  [life('stopping', { reason: 'app-error', appError: 'protocol version mismatch' }), exit(2), 'stopped', ['exited app-error (info)', 'replacement-failed: protocol version mismatch', 'app-failed', 'boot-failed', 'backoff']],
  [life('stopping', { reason: 'boot-timeout' }), exit(1), 'stopped', ['exited boot-timeout (error)', 'replacement-failed: new worker exited during boot (code 1, signal null)', 'boot-failed', 'backoff']],
  [life('stopping', { reason: 'shutdown' }), exit(1), 'stopped', ['exited shutdown (info)', 'replacement-failed: new worker exited during boot (code 1, signal null)']],
  [life('stalling', { reason: 'stalled' }), exit(null, 'SIGKILL'), 'stopped', ['exited stalled (error)']],
  [life('draining', { reason: 'reload' }), exit(0), 'stopped', ['exited reload (info)']],
  [life('draining', { reason: 'recycle' }), exit(0), 'stopped', ['exited recycle (info)']],
  [life('draining', { reason: 'shutdown' }), exit(0), 'stopped', ['exited shutdown (info)']],
  [life('stopping', { reason: 'shutdown', listened: true }), exit(null, 'SIGKILL'), 'stopped', ['exited shutdown (info)']],
  // stopped is final
  [life('stopped'), exit(0), 'stopped', []],
  [life('stopped'), { kind: 'listening' }, 'stopped', []],
  [life('stopped'), { kind: 'force' }, 'stopped', []],
];

describe('worker lifecycle: (state, event) → (state, actions)', () => {
  for (const [from, event, to, actions, after] of rows) {
    const name = `${from.state}${from.reason ? `(${from.reason})` : ''} + ${event.kind}${'protocol' in event ? ` ${event.protocol}` : ''} → ${to}: ${actions.join(', ') || 'nothing'}`;
    it(name, () => {
      const next = step(from, event, T);
      assert.equal(next.life.state, to);
      assert.deepEqual(next.actions.map(show), actions);
      for (const [k, v] of Object.entries(after ?? {})) assert.equal(next.life[k as keyof Life], v, k);
    });
  }

  it('a reload of one worker, from fork to exit', () => {
    const events: LifeEvent[] = [hello(2), { kind: 'listening' }, { kind: 'retire', reason: 'reload' }, { kind: 'replaced' }, { kind: 'drained' }, exit(0)];
    let l = BORN;
    const seen: string[] = [];
    for (const e of events) {
      const next = step(l, e, T);
      l = next.life;
      seen.push(`${l.state}${next.actions.length ? ` [${next.actions.map(show).join(', ')}]` : ''}`);
    }
    assert.deepEqual(seen, ['booting', 'listening [serving]', 'retiring', 'draining [drain reload, deadline 35000]', 'draining', 'stopped [exited reload (info)]']);
  });
});

describe('worker lifecycle: what time alone brings about', () => {
  const at = (now: number, lastBeatAt = now) => ({ now, forkedAt: 0, lastBeatAt });
  const cases: [string, Life, ReturnType<typeof at>, string | undefined][] = [
    ['a boot within --boot-timeout', life('booting'), at(30_000), undefined],
    ['a boot past --boot-timeout', life('booting'), at(30_001), 'boot-timeout'],
    ['a heartbeat within --worker-timeout', life('listening'), at(50_000, 40_000), undefined],
    ['a heartbeat past --worker-timeout', life('listening'), at(50_001, 40_000), 'stall'],
    ['a retiring worker that stops beating', life('retiring', { reason: 'reload' }), at(50_001, 40_000), 'stall'],
    ['a draining worker that stops beating (its drain deadline covers it)', life('draining', { reason: 'reload' }), at(50_001, 40_000), undefined],
    ['a stalling worker stays what it is', life('stalling', { reason: 'stalled' }), at(90_000, 40_000), undefined],
    ['a signal not yet settled', life('listening', { signalledAt: 1000 }), at(1000 + SIGNAL_SETTLE_MS - 1), undefined],
    ['a settled signal', life('listening', { signalledAt: 1000 }), at(1000 + SIGNAL_SETTLE_MS), 'signal-settled'],
    ['a signal to a worker already retiring', life('retiring', { reason: 'reload', signalledAt: 1000 }), at(5000), undefined],
    ['a stall wins over a settled signal', life('listening', { signalledAt: 1000 }), at(50_001, 40_000), 'stall'],
  ];
  for (const [what, l, clock, want] of cases) {
    it(`${what}: ${want ?? 'nothing'}`, () => assert.equal(overdue(l, clock, T)?.kind, want));
  }
});

describe('one list of reasons', () => {
  it('every retire reason is a drain reason, every drain reason an exit reason, none twice', () => {
    for (const r of RETIRE_REASONS) assert.ok((DRAIN_REASONS as readonly string[]).includes(r), r);
    for (const r of DRAIN_REASONS) assert.ok((EXIT_REASONS as readonly string[]).includes(r), r);
    assert.equal(new Set(EXIT_REASONS).size, EXIT_REASONS.length);
    assert.deepEqual([...EXIT_REASONS].sort(), ['app-error', 'boot-timeout', 'crash', 'max-requests', 'memory', 'recycle', 'reload', 'shutdown', 'stalled']);
  });
});

describe('the docs name the same states and reasons', () => {
  const ROOT = path.resolve(__dirname, '..', '..', '..');
  const read = (f: string) => fs.readFileSync(path.join(ROOT, f), 'utf8');
  const names = (text: string) => new Set(text.split(/[^a-z-]+/));

  it("README's `worker exited` reasons are every exit reason", () => {
    const m = /`worker exited` \(with\s+`reason`: ([^)]+)\)/.exec(read('README.md'));
    assert.ok(m, 'README lists the reasons of `worker exited`');
    assert.deepEqual([...names(m[1]!)].filter(Boolean).sort(), [...EXIT_REASONS].sort());
  });

  it('docs/metrics.md names every state of drover_workers', () => {
    const row = read('docs/metrics.md').split('\n').find((l) => l.startsWith('| `drover_workers` |'));
    assert.ok(row);
    const said = names(row);
    for (const s of WORKER_STATES.filter((x) => x !== 'stopped')) assert.ok(said.has(s), s);
  });
});
