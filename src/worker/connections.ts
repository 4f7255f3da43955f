import type * as http from 'node:http';
import type { Socket } from 'node:net';
import type { RequestCounters } from './heartbeat';

export type WorkerState = 'booting' | 'listening' | 'draining' | 'stopped';

/**
 * The worker's view of its traffic: open sockets, requests in flight, and the drain sequence.
 *
 * Drain order matters (measured: closing a server and its idle sockets at once fails ~0.5 % of
 * keep-alive requests, because a client reuses a socket the server is closing):
 *   1. the primary has already stopped handing us sockets;
 *   2. every response from now on carries `Connection: close`, so busy keep-alive clients leave
 *      after their next answer;
 *   3. sockets that stay idle are closed only after a grace (or at the deadline);
 *   4. at the deadline whatever is left is destroyed.
 */
export class Connections {
  state: WorkerState = 'booting';
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<http.ServerResponse>();
  private requests = 0;
  private adopted = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(private readonly server: http.Server) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.checkDrained();
      });
    });
  }

  counters(): RequestCounters {
    return {
      inFlight: this.pending.size,
      connections: this.sockets.size,
      requests: this.requests,
      adopted: this.adopted,
    };
  }

  /** Feed a socket over a connection the primary handed over to the HTTP server (as net.Server's accept would). */
  adopt(socket: Socket): void {
    this.adopted++;
    this.server.emit('connection', socket);
  }

  /**
   * Called when a response finished or its client went away, with the time tracking began
   * (performance.now()). Request metrics hook in here: one 'close' listener per response serves
   * both (measured with callgrind: a second listener and clock read cost 1-2 % of a /ping request).
   */
  onDone: ((req: http.IncomingMessage, res: http.ServerResponse, startedAt: number) => void) | undefined;

  /** Wraps the app: counts in-flight requests and marks responses during drain. */
  track(req: http.IncomingMessage, res: http.ServerResponse): void {
    // The clock is read only for the hook (request metrics on); nothing else here needs it.
    const startedAt = this.onDone ? performance.now() : 0;
    this.pending.add(res);
    if (this.state === 'draining') res.setHeader('Connection', 'close');
    res.once('close', () => {
      this.pending.delete(res);
      this.requests++;
      this.onDone?.(req, res, startedAt);
      // A socket that just went idle during drain will not be reused by a client that saw
      // `Connection: close`; node closes it itself. Nothing to do here but check completion.
      this.checkDrained();
    });
  }

  /** Resolves with the number of sockets force-closed at the deadline (0 = clean drain). */
  drain(timeoutMs: number, idleGraceMs: number): Promise<number> {
    if (this.state !== 'draining') {
      this.state = 'draining';
      for (const res of this.pending) {
        if (!res.headersSent) res.setHeader('Connection', 'close');
      }
    }
    return new Promise((resolve) => {
      const grace = setTimeout(() => {
        // Stops the private listener and closes sockets idle right now (node >= 19).
        this.server.close();
        this.server.closeIdleConnections();
      }, Math.min(idleGraceMs, timeoutMs));
      const deadline = setTimeout(() => {
        const forced = this.sockets.size;
        for (const s of this.sockets) s.destroy();
        finish(forced);
      }, timeoutMs);
      const finish = (forced: number) => {
        clearTimeout(grace);
        clearTimeout(deadline);
        this.server.close();
        this.state = 'stopped';
        resolve(forced);
      };
      this.drainWaiters.push(() => finish(0));
      this.checkDrained();
    });
  }

  private checkDrained(): void {
    if (this.state !== 'draining' || this.sockets.size > 0 || this.pending.size > 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
