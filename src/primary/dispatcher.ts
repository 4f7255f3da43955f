import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log';
import type { DispatchMode } from '../options';
import { choose } from './dispatch-policy';
import type { WorkerHandle } from './worker-handle';

export interface DispatcherOptions {
  mode: DispatchMode;
  freshnessMs: number;
  /** Connections held while no worker can take them (all booting or crashed). */
  maxQueued: number;
  /** A held connection older than this is closed rather than kept waiting. */
  queueTimeoutMs: number;
  /** Told how long each connection waited between accept and handoff (seconds). */
  onHandoff?: (waitSeconds: number) => void;
}

export interface DispatchStats {
  dispatched: number;
  /** Dispatches where every serving worker had a stale heartbeat. */
  allStale: number;
  /** Connections that had to wait for a worker to exist. */
  queued: number;
  /** Connections closed because no worker could take them in time, or the queue was full. */
  dropped: number;
  /** Sockets re-sent because their worker died before adopting them. */
  redispatched: number;
  /** Connections handed over, per worker slot (monotonic across worker lifetimes). */
  dispatchedBySlot: number[];
}

interface InFlight {
  socket: net.Socket;
  handle: WorkerHandle;
}

/**
 * Accepts connections on the app port and hands each socket to one worker over IPC. The primary
 * never reads request bytes (pauseOnConnect); it keeps its copy of a socket until the worker
 * acknowledges adoption (keepOpen), so a worker dying mid-handoff costs the client nothing: the
 * socket goes to another worker. Nothing is proxied.
 */
export class Dispatcher {
  readonly stats: DispatchStats = {
    dispatched: 0, allStale: 0, queued: 0, dropped: 0, redispatched: 0, dispatchedBySlot: [],
  };
  private readonly server: net.Server;
  private readonly inflight = new Map<number, InFlight>();
  private queue: { socket: net.Socket; at: number }[] = [];
  private nextId = 1;
  private cursor = 0;
  private closed = false;

  constructor(
    private readonly opts: DispatcherOptions,
    private readonly workers: () => readonly WorkerHandle[],
    private readonly log: Logger,
    slots: number,
  ) {
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => this.route(socket));
    for (let slot = 0; slot < slots; slot++) this.stats.dispatchedBySlot[slot] = 0;
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stop accepting. Queued connections are closed; sockets already handed over are the workers'. */
  close(): void {
    this.closed = true;
    this.server.close();
    for (const q of this.queue) q.socket.destroy();
    this.queue = [];
  }

  private route(socket: net.Socket, acceptedAt = performance.now()): void {
    if (this.closed) return void socket.destroy();
    const now = performance.now();
    const choice = choose(this.workers(), this.opts.mode, this.opts.freshnessMs, now, this.cursor++);
    if (!choice) return this.hold(socket, acceptedAt);
    if (choice.allStale) this.stats.allStale++;
    this.send(socket, choice.worker, acceptedAt, now);
  }

  private send(socket: net.Socket, h: WorkerHandle, acceptedAt: number, now: number): void {
    const id = this.nextId++;
    this.opts.onHandoff?.((now - acceptedAt) / 1000);
    this.stats.dispatched++;
    this.stats.dispatchedBySlot[h.slot] = (this.stats.dispatchedBySlot[h.slot] ?? 0) + 1;
    h.dispatched++;
    h.dispatchedSinceBeat++;
    h.unacked.add(id);
    this.inflight.set(id, { socket, handle: h });
    h.worker.send({ type: 'drover:socket', id }, socket, { keepOpen: true }, (err: Error | null) => {
      if (!err) return;
      // The worker's channel closed under us: take the socket back and try another worker (it
      // no longer counts as serving, so the choice cannot fall on it again). If none is left, the
      // socket waits in the queue for the replacement.
      this.inflight.delete(id);
      h.unacked.delete(id);
      this.stats.dispatched--;
      this.stats.dispatchedBySlot[h.slot]!--;
      h.dispatched--;
      this.stats.redispatched++;
      this.route(socket, acceptedAt);
    });
  }

  /** The worker owns the socket now: close the primary's copy of the descriptor (no FIN is sent). */
  onAdopted(h: WorkerHandle, id: number): void {
    const entry = this.inflight.get(id);
    h.unacked.delete(id);
    if (!entry) return;
    this.inflight.delete(id);
    entry.socket.destroy();
  }

  /** A worker exited: sockets it never acknowledged go to someone else. */
  onWorkerGone(h: WorkerHandle): void {
    for (const id of h.unacked) {
      const entry = this.inflight.get(id);
      this.inflight.delete(id);
      if (!entry || entry.socket.destroyed) continue;
      this.stats.redispatched++;
      this.route(entry.socket);
    }
    h.unacked.clear();
  }

  /** Called when a worker starts serving and on every supervisor tick. */
  flushQueue(): void {
    if (this.queue.length === 0) return;
    const now = performance.now();
    const waiting = this.queue;
    this.queue = [];
    for (const q of waiting) {
      if (q.socket.destroyed) continue;
      if (now - q.at > this.opts.queueTimeoutMs) {
        this.stats.dropped++;
        q.socket.destroy();
        continue;
      }
      const choice = choose(this.workers(), this.opts.mode, this.opts.freshnessMs, now, this.cursor++);
      if (!choice) {
        this.queue.push(q);
        continue;
      }
      if (choice.allStale) this.stats.allStale++;
      this.send(q.socket, choice.worker, q.at, now);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get queuedNow(): number {
    return this.queue.length;
  }

  private hold(socket: net.Socket, now: number): void {
    if (this.queue.length >= this.opts.maxQueued) {
      this.stats.dropped++;
      if (this.stats.dropped === 1 || this.stats.dropped % 1000 === 0) {
        this.log.warn({ dropped: this.stats.dropped }, 'no worker available and the connection queue is full; closing connections');
      }
      return void socket.destroy();
    }
    this.stats.queued++;
    this.queue.push({ socket, at: now });
  }
}
