/**
 * A worker's life as the primary sees it, as one state machine: `step(life, event)` returns the
 * next life and the actions the transition asks for, as data. It is pure (no clock, no process,
 * no I/O): the supervisor feeds it events and carries out the actions in its reconcile step, and
 * the unit test is a table of (state, event) → (state, actions), as gunicorn's arbiter is tested.
 *
 *                listening               retire(reason)             replaced
 *   booting ─────────────────▶ listening ──────────────▶ retiring ─────────▶ draining
 *     │                          │     ◀──────────────── │                 (deadline: SIGKILL)
 *     │ boot-timeout,            │           keep        │
 *     │ hello(mismatch),         │ stall                 │ stall
 *     │ shutdown                 ▼                       │
 *     ▼                        stalling ◀────────────────┘
 *   stopping                   (SIGTERM; deadline: SIGKILL)
 *   (SIGTERM; deadline: SIGKILL)
 *
 *   any state ── exit ──▶ stopped.  shutdown: listening and retiring drain, booting stops.
 *   force (a second stop signal): SIGKILL, and the worker is stopping.
 *
 * Heartbeats are not events here: they are data on the handle (dispatch reads them), and lateness
 * becomes one event, `stall`, found by `overdue()`. A stalling worker that beats again is still
 * replaced: a loop that froze for --worker-timeout will freeze again.
 */

/** Booting → listening → (retiring →) draining → stopped; stalling and stopping are the kills. */
export const WORKER_STATES = ['booting', 'listening', 'retiring', 'draining', 'stalling', 'stopping', 'stopped'] as const;
/**
 * - booting: forked, has --boot-timeout to listen; takes no connections.
 * - listening: serves, and covers its slot.
 * - retiring: still serves, but its slot counts as uncovered, so the reconcile step forks its
 *   replacement; drained once that one listens, back to listening if it fails to.
 * - draining: told to finish its requests and exit; SIGKILL if it overruns the drain deadline.
 * - stalling: its heartbeat is older than --worker-timeout (a stuck loop): replaced first, then
 *   SIGTERM, then SIGKILL after --kill-grace (a stuck loop cannot act on SIGTERM).
 * - stopping: killed before it served (boot timeout, protocol mismatch, shutdown while booting):
 *   SIGTERM, on which a worker that is not listening exits at once; SIGKILL after --kill-grace
 *   only if it does not (its boot is stuck in synchronous code). A force-stopped worker (second
 *   stop signal) is stopping too, SIGKILLed at once.
 * - stopped: exited; the supervisor forgets it.
 */
export type WorkerState = (typeof WORKER_STATES)[number];

/** Reasons a serving worker is replaced (start the new one, then drain the old one). */
export const RETIRE_REASONS = ['reload', 'recycle', 'memory', 'max-requests'] as const;
export type RetireReason = (typeof RETIRE_REASONS)[number];
/** Reasons a worker is drained: a replacement, or drover stopping. */
export const DRAIN_REASONS = [...RETIRE_REASONS, 'shutdown'] as const;
export type DrainReason = (typeof DRAIN_REASONS)[number];
/**
 * Why a worker left: the one list, for logs, /status `exits`, restart decisions and the
 * drover_worker_restarts_total{reason} label. 'recycle' is also a worker that got a signal of its
 * own; 'app-error' is an app that cannot load, or a worker speaking another protocol.
 */
export const EXIT_REASONS = ['crash', 'stalled', 'boot-timeout', 'app-error', ...DRAIN_REASONS] as const;
export type ExitReason = (typeof EXIT_REASONS)[number];
/**
 * Exits that count against a slot's restart backoff. Not a stall: its replacement was forked
 * before the kill, so there is no respawn left to delay.
 */
const FAILURES: ReadonlySet<ExitReason> = new Set<ExitReason>(['crash', 'app-error', 'boot-timeout']);

/** A worker's own SIGTERM/SIGINT is acted on only if the primary was not signalled meanwhile. */
export const SIGNAL_SETTLE_MS = 1000;

export interface Life {
  readonly state: WorkerState;
  /** Why the primary wants it gone (retire, drain, kill); none while nobody does. Exiting without one is a crash. */
  readonly reason: ExitReason | undefined;
  /** The app's load error as the worker reported it: its exit is then 'app-error', whatever else. */
  readonly appError: string | undefined;
  /** When it reported a SIGTERM/SIGINT of its own (someone outside wants it gone). */
  readonly signalledAt: number | undefined;
  /** It listened once: an exit before that is a failed boot. */
  readonly listened: boolean;
}

export const BORN: Life = { state: 'booting', reason: undefined, appError: undefined, signalledAt: undefined, listened: false };

export type LifeEvent =
  // What the worker reports (IPC) or the OS says.
  | { kind: 'hello'; protocol: number; expected: number }
  | { kind: 'listening' }
  | { kind: 'app-error'; message: string }
  | { kind: 'signal'; at: number }
  | { kind: 'drained' }
  | { kind: 'exit'; code: number | null; signal: string | null }
  // What the reconcile step decided or found overdue (`overdue()`), and the deadline it armed.
  | { kind: 'boot-timeout' }
  | { kind: 'stall' }
  | { kind: 'signal-settled' }
  | { kind: 'retire'; reason: RetireReason }
  | { kind: 'keep' }
  | { kind: 'replaced' }
  | { kind: 'shutdown' }
  | { kind: 'force' }
  | { kind: 'deadline' };

export type LogLevel = 'info' | 'warn' | 'error';

export type LifeAction =
  | { kind: 'log'; level: LogLevel; msg: string; fields?: Record<string, unknown> }
  /** Log where its loop is stuck (the watchdog thread's capture). */
  | { kind: 'log-stall' }
  | { kind: 'reject-protocol' }
  /** Fork the slot's replacement now: capacity first, then the kill. */
  | { kind: 'respawn' }
  | { kind: 'kill'; signal: 'SIGTERM' | 'SIGKILL' }
  /** Count and log the drain, and order it (drover:drain). */
  | { kind: 'drain'; reason: DrainReason }
  /** Feed a `deadline` event after `ms` unless the worker exits first (replaces an armed one). */
  | { kind: 'deadline'; ms: number }
  /** It serves: its slot's retiring predecessor can drain, readiness may change, queued connections can go. */
  | { kind: 'serving' }
  /** It was to replace another and will not: keep the old one, abort the reload. */
  | { kind: 'replacement-failed'; why: string }
  /** Forget it (re-route its unacknowledged sockets, retire its metrics), count and log the exit. */
  | { kind: 'exited'; reason: ExitReason; level: 'info' | 'error'; code: number | null; signal: string | null }
  /** The exit was an app that cannot load: stop drover if nothing else serves. */
  | { kind: 'app-failed' }
  /** It never listened: counts toward --max-boot-failures (crash loop). */
  | { kind: 'boot-failed' }
  /** Delay the slot's respawn by its crash count. */
  | { kind: 'backoff' };

export interface LifeTimeouts {
  bootTimeoutMs: number;
  workerTimeoutMs: number;
  killGraceMs: number;
  drainTimeoutMs: number;
}

export interface Transition {
  life: Life;
  actions: LifeAction[];
}

const stay = (life: Life): Transition => ({ life, actions: [] });

/** SIGTERM now, SIGKILL after the grace unless it exits first. */
const term = (t: LifeTimeouts): LifeAction[] => [{ kind: 'kill', signal: 'SIGTERM' }, { kind: 'deadline', ms: t.killGraceMs }];

function drain(life: Life, reason: DrainReason, t: LifeTimeouts): Transition {
  // The worker enforces the drain deadline itself; the SIGKILL after the kill grace is the
  // backstop for a worker that cannot (stuck loop).
  return {
    life: { ...life, state: 'draining', reason },
    actions: [{ kind: 'drain', reason }, { kind: 'deadline', ms: t.drainTimeoutMs + t.killGraceMs }],
  };
}

/** The next life and what to do, for one event. Events a state does not expect leave it as it is. */
export function step(life: Life, e: LifeEvent, t: LifeTimeouts): Transition {
  const s = life.state;
  if (s === 'stopped') return stay(life);
  const serving = s === 'listening' || s === 'retiring';
  switch (e.kind) {
    case 'hello': {
      if (s !== 'booting' || e.protocol === e.expected) return stay(life);
      const why = 'protocol version mismatch';
      return {
        life: { ...life, state: 'stopping', reason: 'app-error', appError: why },
        actions: [
          { kind: 'log', level: 'error', msg: 'worker speaks another protocol version (forked from newer files?); refusing it', fields: { workerProtocol: e.protocol, primaryProtocol: e.expected } },
          { kind: 'reject-protocol' },
          { kind: 'replacement-failed', why },
          ...term(t),
        ],
      };
    }
    case 'listening':
      if (s !== 'booting') return stay(life);
      return { life: { ...life, state: 'listening', listened: true }, actions: [{ kind: 'serving' }] };
    case 'app-error':
      return stay({ ...life, appError: e.message });
    case 'signal':
      // Acted on once it settles (signal-settled): pm2's tree-kill signals workers a moment before
      // the primary, and replacing workers that are about to be drained is wasted work.
      if (s !== 'booting' && !serving) return stay(life);
      return stay({ ...life, signalledAt: life.signalledAt ?? e.at });
    case 'signal-settled':
      if (s !== 'listening') return stay(life);
      return { life: { ...life, state: 'retiring', reason: 'recycle' }, actions: [{ kind: 'log', level: 'info', msg: 'worker was signalled; replacing it' }] };
    case 'drained':
      // The exit follows at once; the drain deadline stays armed in case it does not.
      return stay(life);
    case 'boot-timeout':
      if (s !== 'booting') return stay(life);
      return {
        life: { ...life, state: 'stopping', reason: 'boot-timeout' },
        actions: [
          { kind: 'log', level: 'error', msg: 'worker did not listen in time; killing it', fields: { bootTimeoutMs: t.bootTimeoutMs } },
          { kind: 'replacement-failed', why: `new worker did not listen within ${t.bootTimeoutMs}ms` },
          ...term(t),
        ],
      };
    case 'stall':
      if (!serving) return stay(life);
      return { life: { ...life, state: 'stalling', reason: 'stalled' }, actions: [{ kind: 'log-stall' }, { kind: 'respawn' }, ...term(t)] };
    case 'retire':
      if (s !== 'listening') return stay(life);
      return stay({ ...life, state: 'retiring', reason: e.reason });
    case 'keep':
      if (s !== 'retiring') return stay(life);
      return stay({ ...life, state: 'listening', reason: undefined });
    case 'replaced':
      if (s !== 'retiring') return stay(life);
      return drain(life, life.reason as RetireReason, t);
    case 'shutdown':
      if (serving) return drain(life, 'shutdown', t);
      if (s === 'booting') return { life: { ...life, state: 'stopping', reason: 'shutdown' }, actions: term(t) };
      return stay(life);
    case 'force':
      return { life: { ...life, state: 'stopping', reason: life.reason ?? 'shutdown' }, actions: [{ kind: 'kill', signal: 'SIGKILL' }] };
    case 'deadline':
      if (s === 'draining') {
        return { life, actions: [{ kind: 'log', level: 'error', msg: 'worker overran its drain deadline; SIGKILL' }, { kind: 'kill', signal: 'SIGKILL' }] };
      }
      if (s === 'stalling' || s === 'stopping') {
        return { life, actions: [{ kind: 'log', level: 'warn', msg: 'worker still running after --kill-grace; SIGKILL', fields: { killGraceMs: t.killGraceMs } }, { kind: 'kill', signal: 'SIGKILL' }] };
      }
      return stay(life);
    case 'exit':
      return { life: { ...life, state: 'stopped' }, actions: exitActions(life, e.code, e.signal) };
  }
}

function exitActions(life: Life, code: number | null, signal: string | null): LifeAction[] {
  const reason: ExitReason = life.appError !== undefined ? 'app-error' : (life.reason ?? 'crash');
  // An exit we asked for is news, not trouble; stalls and boot timeouts are trouble we acted on.
  const level = life.reason !== undefined && life.reason !== 'stalled' && life.reason !== 'boot-timeout' ? 'info' : 'error';
  const out: LifeAction[] = [{ kind: 'exited', reason, level, code, signal }];
  if (!life.listened) out.push({ kind: 'replacement-failed', why: life.appError ?? `new worker exited during boot (code ${code}, signal ${signal})` });
  if (reason === 'app-error') out.push({ kind: 'app-failed' });
  if (!life.listened && reason !== 'shutdown') out.push({ kind: 'boot-failed' });
  if (FAILURES.has(reason)) out.push({ kind: 'backoff' });
  return out;
}

/** The worker's timestamps `overdue()` compares (performance.now() milliseconds). */
export interface LifeClock {
  now: number;
  forkedAt: number;
  lastBeatAt: number;
}

/** The event time alone brings about, if any: a boot, a heartbeat or a reported signal overdue. */
export function overdue(life: Life, c: LifeClock, t: LifeTimeouts): LifeEvent | undefined {
  const s = life.state;
  if (s === 'booting' && c.now - c.forkedAt > t.bootTimeoutMs) return { kind: 'boot-timeout' };
  if ((s === 'listening' || s === 'retiring') && c.now - c.lastBeatAt > t.workerTimeoutMs) return { kind: 'stall' };
  if (s === 'listening' && life.signalledAt !== undefined && c.now - life.signalledAt >= SIGNAL_SETTLE_MS) return { kind: 'signal-settled' };
  return undefined;
}
