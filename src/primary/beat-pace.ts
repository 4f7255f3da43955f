import type { DroverOptions } from '../options';

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
 * What the workers send is a second choice (`reportMs`): every beat while fast, one beat per
 * `sleepMs` otherwise. At the idle pace (keep-alive traffic, no new connection for a second)
 * the workers still beat every `idleMs` for their own watch (block detection samples a loop
 * whose beat is overdue; loop delay is read from the beats), but nothing in the primary needs
 * that news more than once a second: least-busy dispatches nothing, and the first connection
 * that comes is held for a fresh beat (`holdsFirstConnection`). The stall check allows for the
 * beats not sent (each beat sent names its interval). Measured: 20 of the primary's ~40 wake-ups
 * a second under keep-alive traffic were these beats (issue 19, ADR 0020, session 17).
 *
 * States, least-busy: fast → idle when a tick finds no dispatch for `quietMs`; idle → asleep
 * when a tick finds no dispatch and no request for `sleepAfterMs`; asleep → idle when a tick
 * sees requests (keep-alive traffic); idle or asleep → fast on the next connection, which the
 * dispatcher holds until the workers beat at the new pace (each beats at once when told it; beats
 * sent at a second's interval are not trusted for dispatch: see `trustedIntervalMs`), so no
 * connection is placed on a beat up to a second old. Connections that come meanwhile queue
 * behind it.
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
/** The beat interval while asleep (capped at a quarter of --worker-timeout: see sleepIntervalMs). */
const SLEEP_MS = 1000;

/**
 * The sleep interval for these options, which is also how often beats are sent when not fast:
 * SLEEP_MS, at most a quarter of --worker-timeout (a stall is a heartbeat older than it, so
 * sleeping beats stay well inside it), never below --heartbeat-idle-interval.
 */
export function sleepIntervalMs(opts: Pick<DroverOptions, 'heartbeatIdleIntervalMs' | 'workerTimeoutMs'>): number {
  return Math.max(opts.heartbeatIdleIntervalMs, Math.min(SLEEP_MS, Math.floor(opts.workerTimeoutMs / 4)));
}

export class BeatPace {
  state: PaceState;
  /** Pace changes since start (each one is a message to every worker). */
  changes = 0;
  private lastDispatchAt: number;
  private lastTrafficAt: number;

  constructor(
    private readonly o: PaceOptions,
    /** Tells every worker the new interval and how often to send a beat. */
    private readonly broadcast: (intervalMs: number, reportMs: number) => void,
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

  /** How often the workers send a beat now: every beat while fast, else once per sleep interval. */
  get reportMs(): number {
    return this.state === 'fast' ? this.o.fastMs : Math.max(this.intervalMs, this.o.sleepMs);
  }

  get asleep(): boolean {
    return this.state === 'asleep';
  }

  /**
   * Whether dispatch holds a connection for a fresh beat: least-busy, and beats are sent only once
   * a second (idle or asleep), so the last one may be that old. Holding costs the connection one
   * round trip to the workers (they beat at once when told the fast pace).
   */
  get holdsFirstConnection(): boolean {
    return this.o.dispatchUsesBeats && this.state !== 'fast';
  }

  /**
   * The longest announced interval dispatch takes a beat at its word for: a beat sent once a
   * second (idle or asleep) is up to a second old when the first connection after it arrives.
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
    const before = [this.intervalMs, this.reportMs];
    this.state = state;
    this.changes++;
    if (this.intervalMs !== before[0] || this.reportMs !== before[1]) this.broadcast(this.intervalMs, this.reportMs);
  }
}
