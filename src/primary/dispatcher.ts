import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { getSystemErrorName } from 'node:util';
import type { Logger } from '../log';
import type { DispatchMode } from '../options';
import type { AdoptedMsg } from '../protocol';
import { takeOverAccept, type TcpHandle } from '../tcp-handle';
import { BeatPace, type PaceOptions } from './beat-pace';
import { choose } from './dispatch-policy';
import type { WorkerHandle } from './worker-handle';

export interface DispatcherOptions {
  mode: DispatchMode;
  /** A worker whose next heartbeat is later than this is skipped (--dispatch-freshness minus the fast interval). */
  lateGraceMs: number;
  /** The workers' heartbeat interval, fast while dispatching (src/primary/beat-pace.ts). */
  pace: Omit<PaceOptions, 'dispatchUsesBeats'>;
  /** Connections held while no worker can take them (all booting or crashed). */
  maxQueued: number;
  /** A held connection older than this is closed rather than kept waiting. */
  queueTimeoutMs: number;
  /** Told how long each connection waited between accept and handoff (seconds). */
  onHandoff?: (waitSeconds: number) => void;
  /** The first connection after a quiet second or a sleep woke the pace (after a sleep the supervisor ticks at its awake period again). */
  onWake?: () => void;
}

export interface DispatchStats {
  dispatched: number;
  /** Dispatches where every serving worker had a stale heartbeat. */
  allStale: number;
  /**
   * Connections that had to wait in the primary: no worker serving yet (all booting or crashed),
   * or under round-robin every worker still owing the ack of its previous handoff.
   */
  queued: number;
  /** Connections closed because no worker could take them in time, or the queue was full. */
  dropped: number;
  /** Sockets re-sent because their worker died before adopting them. */
  redispatched: number;
  /** Handoffs, per worker slot, a re-sent connection counting again (monotonic across worker lifetimes). */
  dispatchedBySlot: number[];
}

interface InFlight {
  conn: TcpHandle;
  handle: WorkerHandle;
}

/**
 * Accepts connections on the app port and hands each one to one worker over IPC. The primary
 * never reads request bytes: a connection stays a bare TCP handle here (src/tcp-handle.ts), as in
 * node:cluster's round-robin. The primary keeps its copy of the descriptor until the worker
 * acknowledges adoption, so a worker dying mid-handoff costs the client nothing: the connection
 * goes to another worker. Nothing is proxied.
 */
export class Dispatcher {
  readonly stats: DispatchStats = {
    dispatched: 0, allStale: 0, queued: 0, dropped: 0, redispatched: 0, dispatchedBySlot: [],
  };
  readonly pace: BeatPace;
  private readonly server: net.Server;
  private readonly inflight = new Map<number, InFlight>();
  private queue: { conn: TcpHandle; at: number; resent: boolean }[] = [];
  private nextId = 1;
  private cursor = 0;
  private closed = false;

  constructor(
    private readonly opts: DispatcherOptions,
    private readonly workers: () => readonly WorkerHandle[],
    private readonly log: Logger,
    slots: number,
  ) {
    // Only binds: once listening, its handle's connections come to accept() instead.
    this.server = net.createServer();
    for (let slot = 0; slot < slots; slot++) this.stats.dispatchedBySlot[slot] = 0;
    this.pace = new BeatPace({ ...opts.pace, dispatchUsesBeats: opts.mode === 'least-busy' }, (intervalMs, reportMs) => {
      for (const h of workers()) if (h.worker.isConnected()) h.worker.send({ type: 'drover:pace', intervalMs, reportMs });
    }, performance.now());
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host }, () => {
        this.server.off('error', reject);
        try {
          takeOverAccept(this.server, (status, conn) => this.accept(status, conn));
        } catch (err) {
          this.server.close();
          return reject(err);
        }
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stop accepting. Queued connections are closed; those already handed over are the workers'. */
  close(): void {
    this.closed = true;
    this.server.close();
    for (const q of this.queue) q.conn.close();
    this.queue = [];
  }

  private accept(status: number, conn: TcpHandle | undefined): void {
    if (status < 0 || !conn) {
      // Out of descriptors, libuv accepts and closes what waits in the backlog and tells no one;
      // a status arrives here only when even its reserve descriptor is gone. net.Server would
      // emit an 'error' for it, which would end the primary: log and go on.
      this.log.warn({ code: status < 0 ? getSystemErrorName(status) : 'no handle' }, 'accept failed on the app port');
      return;
    }
    this.route(conn);
  }

  /** `resent`: the connection was handed over before and came back (its wait is already recorded). */
  private route(conn: TcpHandle, acceptedAt?: number, resent = false): void {
    if (this.closed) return void conn.close();
    const now = performance.now();
    acceptedAt ??= now;
    if (this.pace.holdsFirstConnection) {
      // The first connection after a quiet second or a sleep: the workers' last beats sent are up
      // to a second old. Wake them (each beats at once when told the fast pace) and hold the
      // connection until the workers due to answer have beaten (onBeat), or the supervisor's
      // next tick at the latest.
      this.pace.onDispatch(now);
      this.opts.onWake?.();
      return this.hold(conn, acceptedAt, resent);
    }
    // Connections that come while the first one waits for that beat queue behind it, in order.
    if (this.queue.length > 0 && this.opts.mode === 'least-busy') return this.hold(conn, acceptedAt, resent);
    const choice = choose(this.workers(), this.opts.mode, this.opts.lateGraceMs, now, this.cursor++, this.pace.trustedIntervalMs);
    if (!choice) return this.hold(conn, acceptedAt, resent);
    if (choice.allStale) this.stats.allStale++;
    this.send(conn, choice.worker, acceptedAt, now, resent);
  }

  private send(conn: TcpHandle, h: WorkerHandle, acceptedAt: number, now: number, resent = false): void {
    const id = this.nextId++;
    if (!resent) this.opts.onHandoff?.((now - acceptedAt) / 1000);
    this.stats.dispatched++;
    this.stats.dispatchedBySlot[h.slot] = (this.stats.dispatchedBySlot[h.slot] ?? 0) + 1;
    h.dispatched++;
    h.unacked.add(id);
    this.inflight.set(id, { conn, handle: h });
    this.pace.onDispatch(now);
    // A bare handle goes as child_process's 'net.Native', which node never closes for us: the
    // primary's descriptor stays open until the worker's ack (onAdopted).
    h.worker.send({ type: 'drover:socket', id }, conn as unknown as net.Socket, (err: Error | null) => {
      if (!err) return;
      // The worker's channel closed under us: take the connection back and try another worker
      // (it no longer counts as serving, so the choice cannot fall on it again). If none is
      // left, the connection waits in the queue for the replacement. The failed handoff stays
      // counted (dispatched counts handoffs, and counters never go down); the re-send counts
      // again, and in `redispatched`.
      this.inflight.delete(id);
      h.unacked.delete(id);
      this.stats.redispatched++;
      this.route(conn, acceptedAt, true);
    });
  }

  /** The worker owns the connection now: close the primary's copy of the descriptor (no FIN is sent). */
  onAdopted(h: WorkerHandle, msg: AdoptedMsg): void {
    const id = msg.id;
    h.onAdopted(msg);
    const entry = this.inflight.get(id);
    if (entry) {
      this.inflight.delete(id);
      entry.conn.close();
    }
    if (h.unacked.delete(id) && h.unacked.size === 0) {
      h.freeSince = performance.now();
      // Under round-robin a queued connection waits for exactly this: a worker free of handoffs.
      if (this.queue.length > 0) this.flushQueue();
    }
  }

  /** A worker exited: connections it never acknowledged go to someone else. */
  onWorkerGone(h: WorkerHandle): void {
    for (const id of h.unacked) {
      const entry = this.inflight.get(id);
      this.inflight.delete(id);
      if (!entry) continue;
      this.stats.redispatched++;
      this.route(entry.conn, undefined, true);
    }
    h.unacked.clear();
  }

  /**
   * A heartbeat came while connections wait. Under least-busy the first of them is waiting for
   * the workers to answer a wake-up (`pace.holdsFirstConnection`): the queue goes out once every
   * serving worker that is due to answer has, so a burst (a proxy opening its pool, a load test's
   * connections) is spread over all of them. Flushed on the first beat, it went whole to the
   * first worker to beat, the others' last beats being up to a second old (10 of 10 connections
   * on one of 2 workers, in 7 bursts of 8; session 18). Not waited for: a worker already late by
   * the interval its last beat announced (its loop is blocked: it will not answer), and one that
   * does not answer by the next tick (100 ms at most), which flushes the queue whatever.
   */
  onBeat(): void {
    if (this.queue.length === 0) return;
    if (this.opts.mode === 'least-busy') {
      const now = performance.now();
      const grace = this.opts.lateGraceMs;
      const answering = (h: WorkerHandle) => h.serving && h.beatLateness(now, this.pace.trustedIntervalMs) > grace && h.beatLateness(now) <= grace;
      if (this.workers().some(answering)) return;
    }
    this.flushQueue();
  }

  /** Called when a worker starts serving and on every supervisor tick. */
  flushQueue(): void {
    if (this.queue.length === 0) return;
    const now = performance.now();
    const waiting = this.queue;
    this.queue = [];
    for (const q of waiting) {
      if (now - q.at > this.opts.queueTimeoutMs) {
        this.stats.dropped++;
        q.conn.close();
        continue;
      }
      const choice = choose(this.workers(), this.opts.mode, this.opts.lateGraceMs, now, this.cursor++, this.pace.trustedIntervalMs);
      if (!choice) {
        this.queue.push(q);
        continue;
      }
      if (choice.allStale) this.stats.allStale++;
      this.send(q.conn, choice.worker, q.at, now, q.resent);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get queuedNow(): number {
    return this.queue.length;
  }

  private hold(conn: TcpHandle, now: number, resent: boolean): void {
    if (this.queue.length >= this.opts.maxQueued) {
      this.stats.dropped++;
      if (this.stats.dropped === 1 || this.stats.dropped % 1000 === 0) {
        this.log.warn({ dropped: this.stats.dropped }, 'no worker available and the connection queue is full; closing connections');
      }
      return void conn.close();
    }
    this.stats.queued++;
    this.queue.push({ conn, at: now, resent });
  }
}
