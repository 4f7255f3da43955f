import type * as http from 'node:http';
import type { Socket } from 'node:net';
import type { RequestCounters } from './heartbeat';

/** When tracking of a response began (performance.now()), for the onDone hook. */
const kStartedAt = Symbol('drover.startedAt');
type Tracked = http.ServerResponse & { [kStartedAt]?: number };

export type WorkerState = 'booting' | 'listening' | 'draining' | 'stopped';

/**
 * The worker's view of its traffic: open sockets, requests in flight, upgraded (WebSocket)
 * connections, and the drain sequence.
 *
 * Drain order matters (measured: closing a server and its idle sockets at once fails ~0.5 % of
 * keep-alive requests, because a client reuses a socket the server is closing):
 *   1. the primary has already stopped handing us sockets;
 *   2. every response from now on carries `Connection: close`, so busy keep-alive clients leave
 *      after their next answer;
 *   3. sockets that stay idle are closed only after a grace, by default the keep-alive timeout the
 *      server advertised (`Keep-Alive: timeout=5`): a client that honours it (undici leaves 1 s
 *      early) has dropped the socket by then, so it cannot send a request into our FIN;
 *   4. the app's shutdown hook runs (`between`): an upgraded connection is no HTTP socket, so
 *      `Connection: close` cannot reach it, and the app closes it in its own protocol (a
 *      WebSocket close frame);
 *   5. at the deadline whatever is left is destroyed (ADR 0016).
 */
export class Connections {
  state: WorkerState = 'booting';
  private readonly sockets = new Set<Socket>();
  /** Sockets an 'upgrade' handed to the app; a subset of `sockets`. */
  private readonly upgraded = new Set<Socket>();
  private readonly pending = new Set<http.ServerResponse>();
  private requests = 0;
  private adopted = 0;
  /**
   * During drain, the responses whose headers had gone out before it began: they end as keep-alive
   * (too late for `Connection: close`), so their clients may reuse the socket for a full keep-alive
   * timeout after the response. `lastKeptAliveAt` is when the last of them ended.
   */
  private keptAlive: Set<http.ServerResponse> | undefined;
  private lastKeptAliveAt = 0;
  /** Set while a drain step waits: re-checks its condition when a socket or response closes. */
  private waiter: (() => void) | undefined;
  /** The 'close' listener of every tracked response (`this` is the response). */
  private readonly onClose: (this: http.ServerResponse) => void;

  constructor(private readonly server: http.Server) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const conns = this;
    this.onClose = function onResponseClose(this: http.ServerResponse): void {
      conns.pending.delete(this);
      conns.requests++;
      if (conns.keptAlive?.delete(this)) conns.lastKeptAliveAt = performance.now();
      conns.onDone?.(this.req, this, (this as Tracked)[kStartedAt]!);
      // A socket that just went idle during drain will not be reused by a client that saw
      // `Connection: close`; node closes it itself. Nothing to do here but check completion.
      conns.waiter?.();
    };
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.upgraded.delete(socket);
        this.waiter?.();
      });
    });
    this.countUpgrades();
  }

  /** Requests in flight now (counters() without building the object: read on every adoption). */
  get inFlight(): number {
    return this.pending.size;
  }

  counters(): RequestCounters {
    return {
      inFlight: this.pending.size,
      connections: this.sockets.size,
      upgraded: this.upgraded.size,
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
  track(res: http.ServerResponse): void {
    // The clock is read only for the hook (request metrics on); nothing else here needs it.
    if (this.onDone) (res as Tracked)[kStartedAt] = performance.now();
    this.pending.add(res);
    if (this.state === 'draining') res.setHeader('Connection', 'close');
    // One listener shared by every response, added with on(): a closure per request plus
    // once()'s wrapper took ~3 µs of a ~390 µs /ping request in CPU profiles (issue 19). A
    // response closes once, so the listener needs no removing.
    res.on('close', this.onClose);
  }

  /**
   * Drains (steps 2-5 above) and resolves with the number of sockets destroyed at the deadline
   * (0 = clean). `between` runs once HTTP is done (or the deadline passed), before upgraded
   * connections are awaited; its own time limit is the caller's.
   */
  async drain(timeoutMs: number, idleGraceMs: number, between: () => Promise<void> = async () => {}): Promise<number> {
    this.state = 'draining';
    const deadline = performance.now() + timeoutMs;
    const keptAlive = (this.keptAlive = new Set());
    for (const res of this.pending) {
      if (res.headersSent) keptAlive.add(res);
      else res.setHeader('Connection', 'close');
    }
    // Closes the sockets idle then, once every socket had the grace to idle: the ones idle since
    // before the drain had it when the timer fires; one whose keep-alive response ended during the
    // drain needs the grace from that end, so the timer waits for it. (Sockets told
    // `Connection: close` close themselves; the deadline bounds it all.) Upgraded sockets are not
    // among the idle: node drops a socket from the server's list when an 'upgrade' listener takes it.
    const closeIdle = (): void => {
      // While such a response still runs, look again later (not sooner than 50 ms apart).
      const wait = keptAlive.size > 0 ? Math.max(idleGraceMs, 50) : this.lastKeptAliveAt + idleGraceMs - performance.now();
      if (wait > 0) grace = setTimeout(closeIdle, wait);
      else this.server.closeIdleConnections();
    };
    let grace = setTimeout(closeIdle, Math.min(idleGraceMs, timeoutMs));
    let forced = await this.waitOrDestroy(() => this.pending.size === 0 && this.sockets.size === this.upgraded.size, deadline, (s) => !this.upgraded.has(s));
    clearTimeout(grace);
    await between();
    forced += await this.waitOrDestroy(() => this.upgraded.size === 0, deadline, (s) => this.upgraded.has(s));
    // Last, as a listening server's 'close' comes only after its connections ended (adopted
    // sockets are not counted by net.Server, so an earlier close() would emit it at once, and
    // socket.io, which closes its clients on that event, would do so before the shutdown hook).
    this.server.close();
    this.state = 'stopped';
    return forced;
  }

  /** Waits until `done()` holds, re-checked as sockets and responses close; at the deadline destroys the sockets `doomed` picks. */
  private waitOrDestroy(done: () => boolean, deadline: number, doomed: (s: Socket) => boolean): Promise<number> {
    if (done()) return Promise.resolve(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        let n = 0;
        for (const s of this.sockets) {
          if (!doomed(s)) continue;
          s.destroy();
          n++;
        }
        resolve(n);
      }, Math.max(0, deadline - performance.now()));
      this.waiter = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(0);
      };
    });
  }

  /**
   * Marks the sockets of 'upgrade' events. The marking listener is there only while the app has
   * one of its own: with no 'upgrade' listener node serves an Upgrade request as plain HTTP (the
   * app answers it, as an `Upgrade: h2c` client expects), while with only ours the socket would
   * hang unanswered. Prepended, so the socket is counted before the app's handler can close it.
   */
  private countUpgrades(): void {
    const mark = (_req: http.IncomingMessage, socket: Socket) => void this.upgraded.add(socket);
    this.server.on('newListener', (event: string | symbol, listener: unknown) => {
      if (event !== 'upgrade' || listener === mark) return;
      if (this.server.listenerCount('upgrade') === 0) this.server.prependListener('upgrade', mark);
    });
    this.server.on('removeListener', (event: string | symbol, listener: unknown) => {
      if (event !== 'upgrade' || listener === mark) return;
      const left = this.server.listeners('upgrade');
      if (left.length === 1 && left[0] === mark) this.server.removeListener('upgrade', mark);
    });
  }
}
