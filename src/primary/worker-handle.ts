import type { Worker } from 'node:cluster';
import { PROTOCOL_VERSION, type AdoptedMsg, type BlockingRoute, type HeartbeatMsg, type WorkerToPrimary } from '../protocol';
import { BORN, type Life, type LifeEvent, type WorkerState } from './worker-lifecycle';

/** The primary's view of one worker process (cf. Puma's worker_handle.rb). */
export class WorkerHandle {
  /** Where it is in its life (src/primary/worker-lifecycle.ts); only the supervisor moves it. */
  life: Life = BORN;
  /** The `deadline` the lifecycle armed (SIGKILL backstop), cleared at exit. */
  deadline: NodeJS.Timeout | undefined;
  pid: number;
  readonly forkedAt: number;
  listeningAt: number | undefined;
  /** performance.now() when the last heartbeat (or hello/listening) arrived. */
  lastBeatAt: number;
  beat: HeartbeatMsg | undefined;
  /** Connections handed to this worker since it started. */
  dispatched = 0;
  /**
   * Requests in flight as the worker last said (a heartbeat, or the ack of a connection, which
   * counts that connection too): least-busy's load with the handoffs not acknowledged since.
   */
  reportedInFlight = 0;
  /** Sockets sent and not yet acknowledged, by dispatch id. */
  readonly unacked = new Set<number>();
  /** performance.now() when `unacked` last became empty (fork time until then): round-robin's order. */
  freeSince: number;
  /** Requests after which the worker is recycled (--max-requests plus its jitter), if set. */
  requestLimit: number | undefined;
  privatePort: number | undefined;
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

  get state(): WorkerState {
    return this.life.state;
  }

  /**
   * Takes new connections: listening or retiring (it serves until its replacement does), and its
   * IPC channel open. A worker that died has a closed channel a moment before its 'exit' is
   * processed; sending it a socket then fails, and re-routing to it again would loop.
   */
  get serving(): boolean {
    return (this.life.state === 'listening' || this.life.state === 'retiring') && this.worker.isConnected();
  }

  get pendingHandoffs(): number {
    return this.unacked.size;
  }

  beatAge(now: number): number {
    return now - this.lastBeatAt;
  }

  /**
   * How long the worker's loop may have been silent: the age of the last beat it sent, less the
   * beats it said it would beat without sending (`beatMs`: at the idle pace it sends one beat of
   * ten). What the stall check and readiness compare with --worker-timeout, so a worker is
   * never judged stalled sooner than one beat interval early, as when every beat was sent.
   */
  silentFor(now: number): number {
    const b = this.beat;
    return this.beatAge(now) - (b?.beatMs === undefined ? 0 : Math.max(0, b.nextMs - b.beatMs));
  }

  /** How long ago its next beat was due, by the interval its last beat announced (or `trustedIntervalMs`, if shorter). */
  beatLateness(now: number, trustedIntervalMs = Infinity): number {
    return now - this.lastBeatAt - Math.min(this.beat?.nextMs ?? 0, trustedIntervalMs);
  }

  /**
   * Busy-ness for least-busy dispatch: the requests in flight it last reported plus the
   * connections sent and not acknowledged yet. Reports come with every ack, so under a stream of
   * new connections the figure is at most one handoff old. (It was the last heartbeat's figure
   * plus every connection sent since that beat: at 20 ms beats and ~1,500 short requests a second
   * per worker, the worker that beat last looked idle and took every connection while the other
   * sat idle until its own beat; new-connection saturation was 0.72x node:cluster's, and 0.86-0.93x
   * with this figure; issue 19.)
   */
  load(): number {
    return this.reportedInFlight + this.unacked.size;
  }

  onBeat(msg: HeartbeatMsg, now: number): void {
    this.beat = msg;
    this.lastBeatAt = now;
    this.reportedInFlight = msg.inFlight;
  }

  /** The worker acknowledged a connection; its in-flight figure then also counts that connection's coming request. */
  onAdopted(msg: AdoptedMsg): void {
    if (msg.inFlight !== undefined) this.reportedInFlight = msg.inFlight + 1;
  }

  /**
   * Records what the worker reported, and returns the lifecycle event it brings, if any; the
   * supervisor feeds that to the machine. Replies (acks, snapshots) are not for the handle.
   */
  note(msg: Exclude<WorkerToPrimary, { type: 'drover:adopted' | 'drover:metrics' }>, now: number): LifeEvent | undefined {
    switch (msg.type) {
      case 'drover:heartbeat':
        return void this.onBeat(msg, now);
      case 'drover:hello':
        this.lastBeatAt = now;
        return { kind: 'hello', protocol: msg.protocol, expected: PROTOCOL_VERSION };
      case 'drover:listening':
        // A worker already killed at its boot timeout may still say it listens: not a start.
        if (this.life.state === 'booting') {
          this.listeningAt = now;
          this.lastBeatAt = now;
          this.privatePort = msg.privatePort;
        }
        return { kind: 'listening' };
      case 'drover:app-error':
        return { kind: 'app-error', message: msg.message };
      case 'drover:signal':
        return { kind: 'signal', at: now };
      case 'drover:drained':
        return { kind: 'drained' };
      case 'drover:blocks':
        // Evidence for /status only: a blocking route is the app's to fix, not a reason to act.
        this.blocks = msg.routes;
        return undefined;
    }
  }
}
