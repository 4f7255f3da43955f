/**
 * How often the workers beat, decided by the primary for all of them.
 *
 * A beat wakes the worker and the primary once each, and on this project's VM a wake-up costs
 * ~0.1-0.3 ms of CPU (ADR 0009); 20 ms beats from two workers made most of the primary's CPU under
 * keep-alive load, where it has nothing else to do (ADR 0010). Only least-busy dispatch needs
 * beats that often, to see within tens of ms that a loop has just blocked. So the workers beat at
 * `fastMs` while new connections are being dispatched, at `idleMs` once none has come for
 * `quietMs` (keep-alive traffic, or none for a while), and at `sleepMs` once no request at all
 * came for `sleepAfterMs` (issue 19: an idle drover beat 10 times a second per worker for nobody).
 *
 * States, least-busy: fast → idle when a tick finds no dispatch for `quietMs`; idle → fast on the
 * next dispatch. That connection is placed on beats at most one idle interval old (a worker is
 * judged late against the interval its last beat announced); the ones after it on the fresh beat
 * each worker sends when told the new pace. idle → asleep when a tick finds no dispatch and no
 * request for `sleepAfterMs`; asleep → fast on the next dispatch, and the dispatcher holds that
 * connection until a worker beats at the new pace (beats announced at the sleep interval are not
 * trusted for dispatch: see `trustedIntervalMs`), so no connection is placed on a beat up to
 * a second old; asleep → idle when a tick sees requests (keep-alive traffic).
 * Round-robin: idle, asleep when nothing came for `sleepAfterMs`, idle again on traffic.
 */
export type PaceState = 'fast' | 'idle' | 'asleep';

export interface PaceOptions {
  /** The interval while dispatching (--heartbeat-interval). */
  fastMs: number;
  /** The interval otherwise (--heartbeat-idle-interval). */
  idleMs: number;
  /** The interval with no traffic at all (SLEEP_MS, at most a quarter of --worker-timeout). */
  sleepMs: number;
  /** No dispatch for this long makes the pace idle. */
  quietMs: number;
  /** No dispatch and no request for this long makes it asleep. */
  sleepAfterMs: number;
  /** Whether dispatch reads heartbeats at all (least-busy does, round-robin does not). */
  dispatchUsesBeats: boolean;
}

/** Without a new connection for this long, dispatch is quiet: one second. */
export const QUIET_MS = 1000;
/** Without any request for this long, drover sleeps. */
export const SLEEP_AFTER_MS = 10_000;
/** The beat interval while asleep (capped at a quarter of --worker-timeout by the caller). */
export const SLEEP_MS = 1000;

export class BeatPace {
  state: PaceState;
  /** Pace changes since start (each one is a message to every worker). */
  changes = 0;
  private lastDispatchAt: number;
  private lastTrafficAt: number;

  constructor(
    private readonly o: PaceOptions,
    /** Tells every worker the new interval. */
    private readonly broadcast: (intervalMs: number) => void,
    now: number,
  ) {
    this.state = o.dispatchUsesBeats ? 'fast' : 'idle';
    this.lastDispatchAt = now;
    this.lastTrafficAt = now;
  }

  /** The interval workers are asked to beat at now (also what a new worker is forked with). */
  get intervalMs(): number {
    return this.state === 'fast' ? this.o.fastMs : this.state === 'idle' ? this.o.idleMs : this.o.sleepMs;
  }

  get asleep(): boolean {
    return this.state === 'asleep';
  }

  /**
   * The longest announced interval dispatch takes a beat at its word for: a beat sent at the
   * sleep interval is up to a second old when the first connection after a sleep arrives.
   */
  get trustedIntervalMs(): number {
    return this.o.idleMs;
  }

  /** A connection was handed to a worker (or is about to be: the first one after a sleep). */
  onDispatch(now: number): void {
    this.lastDispatchAt = now;
    this.lastTrafficAt = now;
    if (this.state !== 'fast' && this.o.dispatchUsesBeats) this.set('fast');
    else if (this.state === 'asleep') this.set('idle');
  }

  /** Called on every supervisor tick; `traffic`: a worker served or holds a request since the last tick. */
  tick(now: number, traffic = false): void {
    if (traffic) this.lastTrafficAt = now;
    if (this.state === 'fast' && now - this.lastDispatchAt >= this.o.quietMs) this.set('idle');
    else if (this.state === 'idle' && now - this.lastTrafficAt >= this.o.sleepAfterMs && now - this.lastDispatchAt >= this.o.sleepAfterMs) this.set('asleep');
    else if (this.state === 'asleep' && traffic) this.set('idle');
  }

  private set(state: PaceState): void {
    const before = this.intervalMs;
    this.state = state;
    this.changes++;
    if (this.intervalMs !== before) this.broadcast(this.intervalMs);
  }
}
