import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { BlockingRoute, MetricJson } from '../protocol';

/** Label of a block during which no request's code ran (timers, GC, a job of the app's own). */
export const NO_REQUEST = '(none)';
/** Label of a block the watchdog could not attribute (its sample came too late or was skipped to bound its cost). */
export const UNKNOWN = '(unknown)';

/** One capture of the stack per route per this long: each costs the loop a Debugger pause (~10-60 ms). */
const STACK_EVERY_MS = 60_000;
/** drover:blocks goes to the primary at most this often. */
const REPORT_EVERY_MS = 1000;
/** Routes kept in the report (/status shows its top 5). */
const REPORT_ROUTES = 10;

/**
 * The times the main thread shares with the watchdog thread: Date.now() values in a Float64Array
 * (an aligned 8-byte store does not tear on the platforms Node runs on, and a stale read costs at
 * most one look of detection, so no Atomics are needed for them).
 */
export const enum Slot {
  /** The loop's last sign of life: a request start or a heartbeat. */
  SignAt = 0,
  /** When the next heartbeat is due: overdue by the sampler's margin, the loop is busy now. */
  BeatDue = 1,
  Length = 2,
}

/** The cells of the shared Int32Array `control`. */
export const enum Cell {
  /** 1 once the worker drains: the watchdog thread stops sampling and closes its inspector session. It sleeps on this cell, and drain notifies it. */
  Stopped = 0,
  Length = 1,
}

/** The buffers shared with the watchdog thread: the times, and `control` (see Cell). */
export interface SharedWatch {
  times: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/** What the main thread answers a sample taken during a block (run through the inspector, on the main thread itself). */
export interface SampleReply {
  /** A request's code is running and drover knows which (the sync marker). */
  known: boolean;
  /** Requests are in flight: if `known` is false, the watchdog should look for one on the stack. */
  inFlight: boolean;
  /** The stack of this block is wanted (its route had none captured in the last minute). */
  wantStack: boolean;
}

interface Pending {
  /** The request whose code was running, if the sample found one. */
  req: http.IncomingMessage | undefined;
  /** Whether a sample ran during this block at all. */
  sampled: boolean;
  /** The sample asked the watchdog to look for the request on the stack and it has not said yet. */
  needScan: boolean;
  wantStack: boolean;
}

interface RouteStats extends BlockingRoute {
  lastLogAt: number;
  stackAtMs: number;
}

const NOT_SAMPLED: Pending = { req: undefined, sampled: false, needScan: false, wantStack: false };
/** An unsampled block while no request ran: no request's code can have run. */
const NO_REQUEST_RAN: Pending = { req: undefined, sampled: true, needScan: false, wantStack: false };

/** The symbol under which the watch is reachable from the inspector's Runtime.evaluate. */
export const GLOBAL_KEY = Symbol.for('drover.blockWatch');

/**
 * Finds what blocks a worker's event loop and which route it belongs to (issue 17, ADR 0018).
 *
 * Signs of life are what the loop does anyway: every request start stores the time (a plain
 * store), every heartbeat stores it and when the next beat is due. A block is measured at the
 * first sign after it: the gap since the previous sign, capped by the loop's active time
 * (event-loop utilization), less the time the thread waited for a CPU. That measure is taken only
 * at heartbeats and at a request start after a gap of at least the threshold, so a request pays
 * two clock reads and a compare; no timer of its own wakes the loop (an earlier "turn tick" did,
 * ~60 times a second under load, and cost ~3 % of the tree's CPU; ADR 0018).
 *
 * Attribution: `current` is the request whose code runs synchronously from drover's request
 * listener. A run of it that took at least the threshold names the block's request with no sample
 * at all. For everything else the watchdog thread samples the main thread while the block is still
 * under way (the heartbeat is overdue and no request started for half the threshold): the sample
 * reads `current`, and when it is empty but requests are in flight the watchdog looks for the
 * request on the paused stack (code run from an event of the request or response, such as a body
 * parser's parse on the request's 'end', or resumed after an `await`). The same pause gives the
 * route's stack, wanted once a minute.
 */
export class BlockWatch {
  readonly shared = new Float64Array(new SharedArrayBuffer(Slot.Length * 8));
  readonly control = new Int32Array(new SharedArrayBuffer(Cell.Length * 4));
  /** Blocks recorded since start (the worker pushes a snapshot when this or its requests change). */
  recorded = 0;
  /** See startCounting. */
  private counting = false;
  /** Time this thread waited for a CPU (ms, from the scheduler) at the last measure; see runWaitMs. */
  private waitAtSign = 0;
  private readonly sched = openSchedstat();
  /** Request starts so far, and their count and the requests in flight at the last measure: whether requests ran in a gap. */
  private starts = 0;
  private startsAtSign = 0;
  private inFlightAtSign = 0;
  private current: http.IncomingMessage | undefined;
  /** The last request whose synchronous run took at least the threshold, since the last measure. */
  private longRun: http.IncomingMessage | undefined;
  private pending: Pending = NOT_SAMPLED;
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  /** The heartbeat's interval as last announced. */
  private beatMs = Infinity;
  private readonly routes = new Map<string, RouteStats>();
  /** Blocks that asked for a stack, by the SignAt value the watchdog saw stale (its id for the block). */
  private readonly awaitingStack = new Map<number, { route: string; ms: number }>();
  private reportTimer: NodeJS.Timeout | undefined;
  private lastReportAt = 0;

  constructor(
    readonly thresholdMs: number,
    private readonly routeOf: (req: http.IncomingMessage) => string,
    private readonly inFlight: () => number,
    private readonly log: (fields: Record<string, unknown>, msg: string) => void,
    private readonly report: (routes: BlockingRoute[]) => void,
  ) {
    this.shared[Slot.SignAt] = Date.now();
    (globalThis as Record<symbol, unknown>)[GLOBAL_KEY] = this;
  }

  /** drover's request listener runs the app through this: the app's synchronous code is the request's. */
  run(req: http.IncomingMessage, res: http.ServerResponse, app: (req: http.IncomingMessage, res: http.ServerResponse) => void): void {
    const start = Date.now();
    // A gap as long as a block since the last sign: measure it now, before this sign replaces it.
    if (start - this.shared[Slot.SignAt]! >= this.thresholdMs) this.sign(start);
    else this.shared[Slot.SignAt] = start;
    this.starts++;
    const prev = this.current;
    this.current = req;
    try {
      app(req, res);
    } finally {
      this.current = prev;
      if (Date.now() - start >= this.thresholdMs) this.longRun = req;
    }
  }

  /**
   * Called once the worker listens: loading the app holds the loop for hundreds of ms by nature
   * (require of every module), which is start-up, not a block of a serving worker. Blocks count
   * from here, measured from now.
   */
  startCounting(): void {
    this.counting = true;
    this.shared[Slot.SignAt] = Date.now();
    this.elu = performance.eventLoopUtilization();
    this.waitAtSign = this.runWaitMs();
  }

  /** The heartbeat's sign of life; `nextMs` until the next one. */
  beat(nextMs: number): void {
    const now = Date.now();
    this.shared[Slot.BeatDue] = now + nextMs;
    // The first beat, or a faster pace (traffic after a quiet spell): the watchdog thread may be
    // asleep until a look planned at the old pace, up to half a second away; wake it to plan anew.
    if (nextMs < this.beatMs) Atomics.notify(this.control, Cell.Stopped);
    this.beatMs = nextMs;
    this.sign(now);
  }

  /**
   * Called by the watchdog thread (inspector Runtime.evaluate) while the loop is blocked; `id` is
   * the sign of life it saw overdue. Undefined if the loop signed since (the block is over).
   */
  sample(id: number): SampleReply | undefined {
    if (this.shared[Slot.SignAt] !== id) return undefined;
    const req = this.current;
    const route = req ? this.knownRoute(req) : undefined;
    const inFlight = this.inFlight() > 0;
    const key = route ?? (req || inFlight ? UNKNOWN : NO_REQUEST);
    const wantStack = Date.now() - (this.routes.get(key)?.stackAtMs ?? 0) >= STACK_EVERY_MS;
    this.pending = { req, sampled: true, needScan: !req && inFlight, wantStack };
    return { known: req !== undefined, inFlight, wantStack };
  }

  /** Called by the watchdog thread on a request or response it found on the paused stack. */
  claim(obj: unknown): boolean {
    const req = this.requestOf(obj);
    if (!req || !this.pending.sampled) return false;
    this.pending.req = req;
    this.pending.needScan = false;
    return true;
  }

  /** Called by the watchdog thread when the paused stack held no request: the block is no request's. */
  noRequest(): void {
    if (this.pending.sampled) this.pending.needScan = false;
  }

  /** A stack the watchdog captured during block `id` (its stale SignAt), frames already formatted. */
  onStack(id: number, stack: string[]): void {
    const b = this.awaitingStack.get(id);
    if (!b) return;
    this.awaitingStack.delete(id);
    const s = this.routes.get(b.route);
    if (!s) return;
    s.stack = stack;
    s.stackAtMs = s.lastLogAt = Date.now();
    s.stackAt = new Date(s.stackAtMs).toISOString();
    this.log({ route: b.route, blockedMs: b.ms, count: s.count, stack }, 'event loop blocked');
    this.scheduleReport();
  }

  /** Counters for the metrics snapshot (prom-client's JSON form, aggregated by the primary). */
  toJson(): MetricJson[] {
    const all = [...this.routes.values()];
    return [
      {
        name: 'drover_event_loop_blocks_total',
        help: 'Synchronous stretches of the event loop longer than --block-threshold, by the route whose code was running ((none): no request, (unknown): not attributed).',
        type: 'counter',
        aggregator: 'sum',
        values: all.map((s) => ({ labels: { route: s.route }, value: s.count })),
      },
      {
        name: 'drover_event_loop_blocked_seconds_total',
        help: 'Time the event loop spent in blocks longer than --block-threshold, by route.',
        type: 'counter',
        aggregator: 'sum',
        values: all.map((s) => ({ labels: { route: s.route }, value: s.seconds })),
      },
    ];
  }

  /** Top routes by blocked time, for /status. */
  top(n = REPORT_ROUTES): BlockingRoute[] {
    return [...this.routes.values()]
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, n)
      .map(({ lastLogAt: _l, stackAtMs: _s, ...r }) => r);
  }

  stop(): void {
    clearTimeout(this.reportTimer);
    if (this.sched) fs.closeSync(this.sched.fd);
    delete (globalThis as Record<symbol, unknown>)[GLOBAL_KEY];
  }

  /** The worker drains: the watchdog thread closes its inspector session (else Node prints "Waiting for the debugger to disconnect..." at exit). */
  stopSampling(): void {
    Atomics.store(this.control, Cell.Stopped, 1);
    Atomics.notify(this.control, Cell.Stopped);
  }

  /** The buffers for the watchdog thread. */
  get sharedWatch(): SharedWatch {
    return { times: this.shared.buffer as SharedArrayBuffer, control: this.control.buffer as SharedArrayBuffer };
  }

  /**
   * A measured sign of life (a heartbeat, or a request start after a long gap): ends a block if the
   * gap since the previous sign was long and busy. Runs about every 20-100 ms (the heartbeat's
   * pace); the utilization read costs well under a microsecond, the wait-time read a few.
   */
  private sign(now: number): void {
    const prevAt = this.shared[Slot.SignAt]!;
    this.shared[Slot.SignAt] = now;
    const elu = performance.eventLoopUtilization();
    const activeMs = elu.active - this.elu.active;
    this.elu = elu;
    const pending = this.pending;
    if (pending.sampled) this.pending = NOT_SAMPLED;
    const longRun = this.longRun;
    this.longRun = undefined;
    // Requests may have run in the gap if one was in flight at either end or one started since
    // the last measure (counted at its start, before any of its code ran).
    const inFlight = this.inFlight();
    const requests = inFlight > 0 || this.inFlightAtSign > 0 || this.starts !== this.startsAtSign;
    this.inFlightAtSign = inFlight;
    this.startsAtSign = this.starts;
    // How long the loop was held, and how much of that the code needed: time the thread was
    // runnable but not running (more busy threads than cores) is the machine's, not the code's.
    // A stretch is a block when the code's part reaches the threshold (else a starved worker's
    // stream requests read as blocks); it is reported at its whole length, what clients waited.
    const waitMs = this.runWaitMs();
    const ms = Math.min(now - prevAt, activeMs);
    const own = ms - (waitMs - this.waitAtSign);
    this.waitAtSign = waitMs;
    if (own < this.thresholdMs || !this.counting) return;
    // Whose block: the request a sample found running; else a request whose own synchronous run
    // was this long; else what the sample saw (no request, or one to look for that was not found).
    if (pending.req) this.record(prevAt, ms, pending);
    else if (longRun) this.record(prevAt, ms, { req: longRun, sampled: true, needScan: false, wantStack: pending.wantStack });
    else this.record(prevAt, ms, pending.sampled || requests ? pending : NO_REQUEST_RAN);
  }

  private record(id: number, ms: number, p: Pending): void {
    const req = p.req;
    // Matched by Express only later (an app-level body parser ran before routing): count the
    // block when the response is done and the route known.
    const res = (req as { res?: http.ServerResponse } | undefined)?.res;
    if (req && res && !(req as { route?: unknown }).route && !res.closed) {
      res.once('close', () => this.record(id, ms, p));
      return;
    }
    const route = req ? this.routeOf(req) : p.sampled && !p.needScan ? NO_REQUEST : UNKNOWN;
    let s = this.routes.get(route);
    if (!s) {
      s = { route, count: 0, seconds: 0, maxMs: 0, lastMs: 0, lastAt: '', lastLogAt: 0, stackAtMs: 0 };
      this.routes.set(route, s);
    }
    s.count++;
    this.recorded++;
    s.seconds += ms / 1000;
    s.maxMs = Math.max(s.maxMs, Math.round(ms));
    s.lastMs = Math.round(ms);
    s.lastAt = new Date().toISOString();
    if (p.wantStack) {
      // The watchdog posts the stack after it resumed the loop: it arrives after this.
      this.awaitingStack.set(id, { route, ms: s.lastMs });
      if (this.awaitingStack.size > 16) this.awaitingStack.delete(this.awaitingStack.keys().next().value!);
    } else if (Date.now() - s.lastLogAt >= STACK_EVERY_MS) {
      s.lastLogAt = Date.now();
      this.log({ route, blockedMs: s.lastMs, count: s.count }, 'event loop blocked');
    }
    this.scheduleReport();
  }

  /**
   * How long this thread has waited on a run queue in all (ms): the second field of Linux's
   * /proc/thread-self/schedstat, re-read through one open descriptor (a few µs; the sign of life
   * that calls it runs ~10-50 times a second). 0 where there is no such file.
   */
  private runWaitMs(): number {
    if (!this.sched) return 0;
    try {
      const n = fs.readSync(this.sched.fd, this.sched.buf, 0, this.sched.buf.length, 0);
      return Number(this.sched.buf.toString('latin1', 0, n).split(' ')[1]) / 1e6 || 0;
    } catch {
      return 0;
    }
  }

  /** The route of a request if Express already matched it (else undefined: known at its end). */
  private knownRoute(req: http.IncomingMessage): string | undefined {
    return (req as { route?: unknown }).route ? this.routeOf(req) : undefined;
  }

  private scheduleReport(): void {
    if (this.reportTimer) return;
    const wait = Math.max(0, this.lastReportAt + REPORT_EVERY_MS - Date.now());
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      this.lastReportAt = Date.now();
      this.report(this.top());
    }, wait);
    this.reportTimer.unref();
  }

  /**
   * The request a request or response found on a paused stack stands for: one a server of this
   * process received (an HTTP client's response is an IncomingMessage too, on a socket no server
   * owns). Nothing marks requests: the check runs only when the watchdog found a candidate.
   */
  private requestOf(obj: unknown): http.IncomingMessage | undefined {
    const req = obj instanceof http.ServerResponse ? (obj.req as unknown) : obj;
    if (!(req instanceof http.IncomingMessage)) return undefined;
    return (req.socket as { server?: unknown } | null)?.server instanceof net.Server ? req : undefined;
  }
}

/** The main thread's scheduler statistics (the constructor runs on it), if this is Linux. */
function openSchedstat(): { fd: number; buf: Buffer } | undefined {
  try {
    return { fd: fs.openSync('/proc/thread-self/schedstat', 'r'), buf: Buffer.alloc(96) };
  } catch {
    return undefined;
  }
}
