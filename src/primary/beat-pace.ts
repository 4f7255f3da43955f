/**
 * How often the workers beat, decided by the primary for all of them.
 *
 * A beat wakes the worker and the primary once each, and on this project's VM a wake-up costs
 * ~0.1-0.3 ms of CPU (ADR 0009); 20 ms beats from two workers made most of the primary's CPU under
 * keep-alive load, where it has nothing else to do (ADR 0010). Only least-busy dispatch needs
 * beats that often, to see within tens of ms that a loop has just blocked. So the workers beat at
 * `fastMs` while new connections are being dispatched, and at `idleMs` once none has come for
 * `quietMs` (keep-alive traffic, no traffic) or always when dispatch is round-robin.
 *
 * States, least-busy: fast → idle when a tick finds no dispatch for `quietMs`; idle → fast on the
 * next dispatch. That connection is placed on beats at most one idle interval old (a worker is
 * judged late against the interval its last beat announced); the ones after it on the fresh beat
 * each worker sends when told the new pace. Round-robin stays idle.
 */
export type PaceState = 'fast' | 'idle';

export interface PaceOptions {
  /** The interval while dispatching (--heartbeat-interval). */
  fastMs: number;
  /** The interval otherwise (--heartbeat-idle-interval). */
  idleMs: number;
  /** No dispatch for this long makes the pace idle. */
  quietMs: number;
  /** Whether dispatch reads heartbeats at all (least-busy does, round-robin does not). */
  dispatchUsesBeats: boolean;
}

/** Without a new connection for this long, dispatch is quiet: one second. */
export const QUIET_MS = 1000;

export class BeatPace {
  state: PaceState;
  /** Pace changes since start (each one is a message to every worker). */
  changes = 0;
  private lastDispatchAt: number;

  constructor(
    private readonly o: PaceOptions,
    /** Tells every worker the new interval. */
    private readonly broadcast: (intervalMs: number) => void,
    now: number,
  ) {
    this.state = o.dispatchUsesBeats ? 'fast' : 'idle';
    this.lastDispatchAt = now;
  }

  /** The interval workers are asked to beat at now (also what a new worker is forked with). */
  get intervalMs(): number {
    return this.state === 'fast' ? this.o.fastMs : this.o.idleMs;
  }

  /** A connection was handed to a worker. */
  onDispatch(now: number): void {
    this.lastDispatchAt = now;
    if (this.state === 'idle' && this.o.dispatchUsesBeats) this.set('fast');
  }

  /** Called on every supervisor tick. */
  tick(now: number): void {
    if (this.state === 'fast' && now - this.lastDispatchAt >= this.o.quietMs) this.set('idle');
  }

  private set(state: PaceState): void {
    this.state = state;
    this.changes++;
    if (this.o.fastMs !== this.o.idleMs) this.broadcast(this.intervalMs);
  }
}
