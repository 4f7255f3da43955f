/**
 * The watchdog thread's half of block detection (src/worker/block-watch.ts has the main thread's,
 * ADR 0018). Runs in the watchdog thread: it sees that the main loop is busy (its heartbeat overdue,
 * no request started for a while) and,
 * while the loop is still blocked, asks the main thread what runs there, through the inspector:
 *
 * 1. `Runtime.evaluate` of the watch's `sample()`: the inspector runs it on the main thread at its
 *    next interrupt check, inside the blocking code, with no debugger attached (well under 1 ms).
 *    That names the request when drover's own marker is set (the app's synchronous code run from
 *    drover's request listener).
 * 2. Only when needed, a Debugger pause: for code run from an event of the request or response,
 *    or resumed after an `await` (no marker; the request is found as the `this` of the event's
 *    emit frame or as a frame's local variable), and for the stack of a route that had none in
 *    the last minute. The first pause costs the main thread ~10-60 ms (Debugger.enable reports
 *    every loaded script), later ones ~2-3 ms while the debugger stays enabled (it is disabled
 *    after LINGER_MS without a pause). Pauses that search for a request draw on a budget of 1 %
 *    of the time (with a burst of BURST_MS); past it, a block is counted as (unknown).
 */
import { Session } from 'node:inspector';
import { parentPort } from 'node:worker_threads';
import { Cell, Slot, type SampleReply, type SharedWatch } from './block-watch';
import { formatFrame, sourceFrame } from './source-map';

const WATCH = "globalThis[Symbol.for('drover.blockWatch')]";
/** Frames searched for the request, and frames kept in a stack. */
const SCAN_FRAMES = 16;
const STACK_FRAMES = 20;
/** Objects that may lead to a request; claim() takes those a server of the process received. */
const REQUEST_CLASSES = new Set(['IncomingMessage', 'ServerResponse']);
/** Share of the main thread's time the pauses may take, and the burst allowed at once (ms). */
const PAUSE_SHARE = 0.01;
const BURST_MS = 200;
/** The session (and the debugger, once enabled) stays this long after a sample, so a run of blocks pays Debugger.enable once. */
const LINGER_MS = 10_000;

export interface StackMsg {
  type: 'drover:stack';
  /** The block's id: the SignAt value the sampler saw overdue. */
  id: number;
  stack: string[];
}

type Post = <T>(method: string, params?: object) => Promise<T>;

export class BlockSampler {
  private readonly shared: Float64Array;
  /** Shared with the main thread (see Cell); the watchdog thread sleeps on its Stopped cell. */
  readonly control: Int32Array;
  private readonly session = new Session();
  private readonly post: Post;
  /** The SignAt of the last block sampled: one sample per block. */
  private sampledFor = 0;
  /** When the thread last looked for a block. */
  private lookedAt = 0;
  /** Connected only around samples: a connected session makes Node print "Waiting for the debugger to disconnect..." at exit. */
  private connected = false;
  private closed = false;
  /** Pause time left to spend (ms), refilled at PAUSE_SHARE of the time passed. */
  private budgetMs = BURST_MS;
  private budgetAt = Date.now();
  private enabled = false;
  /** When a connected session goes (LINGER_MS after its last sample). */
  private lingerUntil = 0;
  /** Call frames name their script by id only: id -> file and the source map V8 saw, from scriptParsed. */
  private readonly scripts = new Map<string, { url: string; sourceMapURL?: string }>();
  /** The heartbeat overdue by this much means the loop is busy now (a late timer under load is a few ms). */
  readonly marginMs: number;
  /**
   * A busy loop that started no request for this long is a block in the making, worth a sample
   * (half the threshold: sampled inside a block, but not for every long-ish turn of a saturated
   * loop, whose request starts keep the sign fresh).
   */
  private readonly stretchMs: number;
  /**
   * The shortest time between two looks. The thread looks when the heartbeat would be overdue,
   * so at the 100 ms keep-alive pace about 10 times a second; this bounds it at the 20 ms pace of
   * new-connection dispatch. Each wake-up costs ~0.1 ms of CPU here (ADR 0018).
   */
  private readonly lookMs: number;

  constructor(shared: SharedWatch, thresholdMs: number) {
    this.shared = new Float64Array(shared.times);
    this.control = new Int32Array(shared.control);
    this.marginMs = Math.max(10, Math.floor(thresholdMs / 5));
    this.stretchMs = Math.floor(thresholdMs / 2);
    this.lookMs = Math.max(5, Math.floor(thresholdMs / 2));
    this.session.on('Debugger.scriptParsed', (ev) => this.scripts.set(ev.params.scriptId, ev.params));
    this.post = (method, params) =>
      new Promise((resolve, reject) => this.session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as never))));
  }

  /**
   * When the watchdog thread should look next for block detection's sake: when the loop, if it
   * stopped turning now, would have been busy long enough for a sample (its heartbeat overdue by
   * the margin, and no request started for stretchMs), but not sooner than lookMs after the last
   * look; and when a lingering session is due to go. An idle worker beats once a second, so its
   * thread wakes at its idle pace.
   */
  nextLookAt(now: number): number {
    if (this.closed) return Infinity;
    if (Atomics.load(this.control, Cell.Stopped) === 1) return now;
    const at = this.connected ? this.lingerUntil : Infinity;
    const s = this.shared;
    const due = s[Slot.BeatDue]!;
    if (due === 0) return at; // not listening yet: no beat to be late
    const signAt = s[Slot.SignAt]!;
    // This block was sampled: look again a while later, when it may have ended and a new one begun.
    const look = signAt === this.sampledFor ? now + this.lookMs : Math.max(due + this.marginMs, signAt + this.stretchMs, this.lookedAt + this.lookMs);
    return Math.min(at, look);
  }

  /** Every wake-up of the watchdog thread: closes the session at drain, and once it lingered long enough. */
  tidy(now: number): void {
    if (Atomics.load(this.control, Cell.Stopped) === 1) this.close();
    else if (this.connected && now >= this.lingerUntil) this.disconnect();
  }

  /** One look for a block in the making: a promise while the sample it started is under way. */
  check(now: number): Promise<void> | undefined {
    if (this.closed) return undefined;
    this.lookedAt = now;
    const s = this.shared;
    const signAt = s[Slot.SignAt]!;
    const due = s[Slot.BeatDue]!;
    if (due === 0 || now - due < this.marginMs || now - signAt < this.stretchMs || signAt === this.sampledFor) return undefined;
    this.sampledFor = signAt;
    return this.sample(signAt);
  }

  /** The worker is draining: no more samples, and the session goes. */
  private close(): void {
    this.closed = true;
    this.disconnect();
  }

  private disconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    this.enabled = false;
    this.scripts.clear();
    this.session.disconnect();
  }

  private async sample(id: number): Promise<void> {
    if (!this.connected) {
      this.session.connectToMainThread();
      this.connected = true;
    }
    try {
      const r = await this.post<{ result: { value?: SampleReply } }>('Runtime.evaluate', { expression: `${WATCH}?.sample(${id})`, returnByValue: true });
      const reply = r.result.value;
      if (!reply) return;
      const now = Date.now();
      this.budgetMs = Math.min(BURST_MS, this.budgetMs + (now - this.budgetAt) * PAUSE_SHARE);
      this.budgetAt = now;
      const scan = !reply.known && reply.inFlight && this.budgetMs > 0;
      if (scan || reply.wantStack) await this.pause(id, scan, reply.wantStack);
    } catch {
      // The main thread moved on (the block ended mid-way) or is exiting: this block goes unattributed.
    } finally {
      // The session (and the debugger, if enabled) stays a while: a run of blocks connects and enables once.
      this.lingerUntil = Date.now() + LINGER_MS;
    }
  }

  private async pause(id: number, scan: boolean, wantStack: boolean): Promise<void> {
    // The budget is charged what the main thread spends on the debugger: enabling it, and the
    // time it stays paused. Not the wait for the pause to land: the thread is busy with the
    // block meanwhile (a 25 MB JSON.parse takes the pause only when it returns), which it would
    // be anyway. Charging that wait spent the budget in two or three blocks of a looping S3
    // naive route and left the rest (unknown).
    let charged = 0;
    let pausedAt: number | undefined;
    let frames: PausedFrame[] = [];
    try {
      const paused = new Promise<PausedFrame[]>((resolve) =>
        this.session.once('Debugger.paused', (ev) => {
          pausedAt = Date.now();
          resolve(ev.params.callFrames as PausedFrame[]);
        }),
      );
      if (!this.enabled) {
        // Replays scriptParsed for every loaded script the first time.
        const enabling = Date.now();
        await this.post('Debugger.enable');
        charged += Date.now() - enabling;
      }
      this.enabled = true;
      await this.post('Debugger.pause');
      frames = await paused;
      // The loop signed since: the block ended before the pause landed, and these frames are
      // whatever ran next. (Read while the main thread is paused, so it cannot change meanwhile.)
      if (this.shared[Slot.SignAt] !== id) frames = [];
      else if (scan) await this.findRequest(frames);
    } finally {
      await this.post('Debugger.resume').catch(() => {});
      if (pausedAt !== undefined) charged += Date.now() - pausedAt;
      this.budgetMs -= charged;
    }
    if (wantStack && frames.length) {
      const stack = frames.slice(0, STACK_FRAMES).map((f) => formatFrame(sourceFrame(f, this.scripts.get(f.location.scriptId))));
      const msg: StackMsg = { type: 'drover:stack', id, stack };
      parentPort?.postMessage(msg);
    }
  }

  /**
   * A request or response on the paused stack: first as a frame's `this` (the emit frame of an
   * event of the request or response: free, it comes with the paused event), then as a local
   * variable of one of the innermost SCAN_FRAMES frames (a round trip per frame), innermost first.
   */
  private async findRequest(frames: PausedFrame[]): Promise<void> {
    const candidates = frames.filter((f) => f.this.objectId && REQUEST_CLASSES.has(f.this.className ?? '')).map((f) => f.this.objectId!);
    if (await this.claimAny(candidates)) return;
    for (const f of frames.slice(0, SCAN_FRAMES)) {
      const locals: string[] = [];
      for (const scope of f.scopeChain) {
        if (scope.type !== 'local' || !scope.object.objectId) continue;
        const props = await this.post<{ result: { value?: { className?: string; objectId?: string } }[] }>('Runtime.getProperties', {
          objectId: scope.object.objectId,
          ownProperties: true,
        });
        for (const p of props.result) if (p.value?.objectId && REQUEST_CLASSES.has(p.value.className ?? '')) locals.push(p.value.objectId);
      }
      if (await this.claimAny(locals)) return;
    }
    await this.post('Runtime.evaluate', { expression: `${WATCH}?.noRequest()` });
  }

  /** Offers each object to the watch until one is a request a server here received. */
  private async claimAny(objectIds: string[]): Promise<boolean> {
    for (const objectId of objectIds) {
      const r = await this.post<{ result: { value?: boolean } }>('Runtime.callFunctionOn', {
        objectId,
        functionDeclaration: `function () { return ${WATCH}.claim(this); }`,
        returnByValue: true,
      });
      if (r.result.value === true) return true;
    }
    return false;
  }
}

interface PausedFrame {
  functionName: string;
  url: string;
  location: { scriptId: string; lineNumber: number; columnNumber?: number };
  this: { className?: string; objectId?: string };
  scopeChain: { type: string; object: { objectId?: string } }[];
}
