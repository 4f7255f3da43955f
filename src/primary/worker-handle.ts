import type { Worker } from 'node:cluster';
import type { BlockingRoute, HeartbeatMsg } from '../protocol';

/**
 * booting → listening → draining → stopped. `stalling` is a listening worker the watchdog gave up
 * on (replacement started, being killed); it takes no traffic and counts as gone for readiness.
 */
export type WorkerPhase = 'booting' | 'listening' | 'draining' | 'stalling' | 'stopped';

/** Why a worker left, for logs, restart decisions and (later) the restarts metric. */
export type ExitReason = 'crash' | 'stalled' | 'boot-timeout' | 'app-error' | 'reload' | 'shutdown' | 'recycle' | 'memory' | 'max-requests';

/** The primary's view of one worker process (cf. Puma's worker_handle.rb). */
export class WorkerHandle {
  phase: WorkerPhase = 'booting';
  pid: number;
  readonly forkedAt: number;
  listeningAt: number | undefined;
  /** performance.now() when the last heartbeat (or hello/listening) arrived. */
  lastBeatAt: number;
  beat: HeartbeatMsg | undefined;
  /** Connections handed to this worker since it started. */
  dispatched = 0;
  /** Connections handed over since the last heartbeat: added to its in-flight for dispatch. */
  dispatchedSinceBeat = 0;
  /** Sockets sent and not yet acknowledged, by dispatch id. */
  readonly unacked = new Set<number>();
  /** performance.now() when `unacked` last became empty (fork time until then): round-robin's order. */
  freeSince: number;
  /** Set when the worker is to be replaced: it serves until its successor listens, then drains. */
  retiring: 'reload' | 'recycle' | 'memory' | 'max-requests' | undefined;
  /** Requests after which the worker is recycled (--max-requests plus its jitter), if set. */
  requestLimit: number | undefined;
  /** When the worker reported a SIGTERM/SIGINT of its own (someone wants it gone). */
  signalledAt: number | undefined;
  /** Why we stopped it, if we did; an exit without one is a crash. */
  stopReason: ExitReason | undefined;
  killTimer: NodeJS.Timeout | undefined;
  drainStartedAt: number | undefined;
  privatePort: number | undefined;
  appError: string | undefined;
  /** The worker's top blocking routes from its last drover:blocks (each message is its whole list, not a delta). */
  blocks: BlockingRoute[] = [];

  constructor(
    readonly worker: Worker,
    readonly slot: number,
    readonly generation: number,
    now: number,
  ) {
    this.pid = worker.process.pid ?? 0;
    this.forkedAt = now;
    this.lastBeatAt = now;
    this.freeSince = now;
  }

  get id(): number {
    return this.worker.id;
  }

  /**
   * Takes new connections: listening, not draining, not written off, and its IPC channel open. A
   * worker that died has a closed channel a moment before its 'exit' is processed; sending it a
   * socket then fails, and re-routing to it again would loop.
   */
  get serving(): boolean {
    return this.phase === 'listening' && this.worker.isConnected();
  }

  get pendingHandoffs(): number {
    return this.unacked.size;
  }

  get alive(): boolean {
    return this.phase !== 'stopped';
  }

  beatAge(now: number): number {
    return now - this.lastBeatAt;
  }

  /** How long ago its next beat was due, by the interval its last beat announced. */
  beatLateness(now: number): number {
    return now - this.lastBeatAt - (this.beat?.nextMs ?? 0);
  }

  /** Busy-ness for least-busy dispatch: last reported in-flight plus what we sent since. */
  load(): number {
    return (this.beat?.inFlight ?? 0) + this.dispatchedSinceBeat;
  }

  /**
   * Orders a drain: the worker stops taking work and exits when done. The worker enforces the
   * deadline itself; the SIGKILL timer here is the backstop if it cannot (stuck loop).
   */
  drain(reason: ExitReason, now: number, t: { drainTimeoutMs: number; drainIdleGraceMs: number; killGraceMs: number }, onOverrun: () => void): void {
    this.phase = 'draining';
    this.stopReason ??= reason;
    this.drainStartedAt = now;
    this.worker.send({ type: 'drover:drain', timeoutMs: t.drainTimeoutMs, idleGraceMs: t.drainIdleGraceMs });
    this.killTimer = setTimeout(() => {
      onOverrun();
      this.worker.process.kill('SIGKILL');
    }, t.drainTimeoutMs + t.killGraceMs);
  }

  /** SIGTERM now, SIGKILL after the grace: for workers that cannot be drained (stuck, failed boot). */
  terminate(reason: ExitReason, killGraceMs: number): void {
    if (this.phase === 'stopped') return;
    if (this.phase === 'booting' || this.phase === 'listening') this.phase = 'stalling';
    this.stopReason ??= reason;
    this.worker.process.kill('SIGTERM');
    clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => this.worker.process.kill('SIGKILL'), killGraceMs);
  }

  onBeat(msg: HeartbeatMsg, now: number): void {
    this.beat = msg;
    this.lastBeatAt = now;
    this.dispatchedSinceBeat = 0;
  }
}
