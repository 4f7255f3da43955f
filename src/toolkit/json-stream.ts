/**
 * Time-sliced JSON output: the bytes of `JSON.stringify(value)`, produced in slices of a few
 * milliseconds with the event loop free in between, so one big response no longer holds every
 * other request on the worker (scenario S0: 23 MB of JSON held the loop for 300–500 ms).
 *
 * The walk uses an explicit stack, so it can stop anywhere and resume in the next slice. Walking
 * every value in JS would be several times slower than native `JSON.stringify`, so subtrees that a
 * bounded probe (`weigh`) finds small are handed to `JSON.stringify` whole — consecutive small
 * array elements together — and only the big containers above them are walked here.
 *
 * Lazy sequences: a non-array object with a `Symbol.asyncIterator` method, or an iterator (`next`
 * and `Symbol.iterator` methods: generator objects, `map.values()`), is written as a JSON array
 * whose items are pulled only as slices need them, at the top level or nested anywhere. Other
 * iterables (Map, Set, a class with only `Symbol.iterator`) render as `JSON.stringify` renders
 * them, usually `{}`: pass `set.values()` to stream a Set.
 *
 * Differences from `JSON.stringify`: no replacer or indentation; getters inside small subtrees are
 * read twice (probe, then stringify); nesting too deep for `JSON.stringify` (RangeError) works;
 * one huge string is escaped in one step; a top-level value without JSON text throws TypeError.
 */
import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { types } from 'node:util';

/** Options of {@link jsonChunks} and {@link streamJson}. */
export interface JsonStreamOptions {
  /**
   * Time budget of one slice, in milliseconds; between slices the event loop runs other work.
   * A slice overruns by at most one small subtree and one write (well under a millisecond).
   * @defaultValue 5
   */
  sliceMs?: number;
  /**
   * Output is batched into chunks of about this many characters (≈ bytes for ASCII): one
   * `res.write` per 64 KiB costs little, one per value would dominate. A slice's end flushes.
   * @defaultValue 65536
   */
  chunkSize?: number;
  /** Stops the work. {@link jsonChunks} then throws the signal's reason; {@link streamJson} resolves. */
  signal?: AbortSignal;
}

/** What {@link streamJson} did. */
export interface StreamResult {
  /** The whole body was handed to the OS. False when the client left or the signal aborted. */
  completed: boolean;
  /** UTF-8 bytes written to the body. */
  bytes: number;
  /** Slices the work was cut into; each ended with a turn of the event loop. */
  slices: number;
  /** Longest slice in milliseconds: the longest that other requests waited for this one. */
  maxSliceMs: number;
  /** From the call to the end (or the stop), in milliseconds. */
  durationMs: number;
}

const DEFAULT_SLICE_MS = 5;
const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** performance.now() costs ~50 ns: look at the clock every this many steps or output characters. */
const CLOCK_EVERY_STEPS = 128;
const CLOCK_EVERY_CHARS = 16 * 1024;
/**
 * A subtree (or run of array elements) is stringified natively up to this weight: 1 per value plus
 * 1 per 16 string characters; ~20 KB of output, 0.1–0.2 ms. On S0, 256 and 4096 were within 10 %.
 */
const SMALL_WEIGHT = 1024;
/** Deeper subtrees are walked here: it bounds the probe's cost on long chains. */
const SMALL_DEPTH = 32;

const dateToJSON = Date.prototype.toJSON;
type Dict = Record<string | symbol, unknown>;

/** The lazy-sequence rule (see the file comment). */
function isLazy(o: Dict): boolean {
  if (typeof o[Symbol.asyncIterator] === 'function') return true;
  return typeof o.next === 'function' && typeof o[Symbol.iterator] === 'function' && !Array.isArray(o);
}

/**
 * `left` minus the weight of the subtree under `v`, or negative as soon as it is too heavy or too
 * deep, or holds what `JSON.stringify` must not get here: a lazy sequence, or a `toJSON` other than
 * a nested Date's (its result could be anything, and at the root it was already applied). A cycle
 * simply exhausts the budget.
 */
function weigh(v: object, left: number, depth: number): number {
  const toJSON = (v as Dict).toJSON;
  if (typeof toJSON === 'function') return toJSON === dateToJSON && depth > 0 ? left - 3 : -1;
  if (depth > SMALL_DEPTH) return -1;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && left >= 0; i++) left = weighValue(v[i], left - 1, depth);
    return left;
  }
  if (isLazy(v as Dict)) return -1;
  for (const k in v) if ((left = weighValue((v as Dict)[k], left - 1, depth)) < 0) return -1;
  return left;
}

function weighValue(e: unknown, left: number, depth: number): number {
  if (typeof e === 'object' && e !== null) return weigh(e, left, depth + 1);
  return typeof e === 'string' ? left - (e.length >> 4) : left;
}

/** JSON text of a primitive; undefined where JSON.stringify omits (undefined, function, symbol). */
function primitive(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
    default:
      return v === null ? 'null' : undefined;
  }
}

/** JSON.stringify's unwrapping of `new Number(1)`, `new String('a')`…, by internal slot as it does. */
const unbox = (v: object): unknown =>
  types.isNumberObject(v) ? Number(v) : types.isStringObject(v) ? String(v) : types.isBigIntObject(v) ? 0n : v.valueOf();

/** Containers being walked; `of` is the value, for the circular-structure check. */
class ArrayFrame {
  i = 0;
  readonly n: number;
  constructor(readonly of: readonly unknown[]) {
    this.n = of.length;
  }
}
class ObjectFrame {
  i = 0;
  wrote = false;
  readonly keys: string[];
  constructor(readonly of: Dict) {
    this.keys = Object.keys(of);
  }
}
class SeqFrame {
  i = 0;
  /** An async item that arrived and is not written yet. */
  ready: IteratorResult<unknown> | undefined;
  constructor(
    readonly of: object,
    readonly it: Iterator<unknown> | AsyncIterator<unknown>,
    readonly isAsync: boolean,
  ) {}
}
type Frame = ArrayFrame | ObjectFrame | SeqFrame;

/** The resumable walk; {@link jsonChunks} is its public face. */
class Serializer {
  /** Characters in `parts`. */
  buffered = 0;
  /** Set when pump() returned 'wait': settles when the async item is `ready`. */
  pending: Promise<void> | undefined;
  private parts: string[] = [];
  private readonly stack: Frame[] = [];
  private readonly open = new Set<object>();
  private started = false;
  /** Consecutive small elements, stringified together by flush() (see item()). */
  private readonly batch: unknown[] = [];
  private batchLeft = SMALL_WEIGHT;
  private batchSep = '';

  constructor(
    private readonly root: unknown,
    private readonly chunkSize: number,
  ) {}

  take(): string {
    this.flush();
    const s = this.parts.join('');
    this.parts = [];
    this.buffered = 0;
    return s;
  }

  /** Runs until a chunk is full, the deadline passed, an async item must be awaited, or the end. */
  pump(deadline: number): 'full' | 'slice' | 'wait' | 'done' {
    if (performance.now() >= deadline) return 'slice';
    let steps = 0;
    let mark = this.buffered;
    for (;;) {
      if (this.buffered >= this.chunkSize) return 'full';
      if (++steps > CLOCK_EVERY_STEPS || this.buffered - mark > CLOCK_EVERY_CHARS) {
        if (performance.now() >= deadline) return 'slice';
        steps = 0;
        mark = this.buffered;
      }
      const f = this.stack[this.stack.length - 1];
      if (f === undefined) {
        if (this.started) return 'done';
        this.started = true;
        // JSON.stringify would return undefined; an empty body is not JSON, so refuse instead.
        const r = this.resolve(this.root, '');
        if (r === undefined) throw new TypeError('The value has no JSON text: JSON.stringify would return undefined.');
        this.place('', r);
      } else if (f instanceof ArrayFrame) {
        if (f.i === f.n) this.leave(']');
        else this.item(f, f.of[f.i]);
      } else if (f instanceof ObjectFrame) {
        if (f.i === f.keys.length) this.leave('}');
        else {
          const k = f.keys[f.i++]!;
          const r = this.resolve(f.of[k], k);
          if (r !== undefined) this.place((f.wrote ? ',' : '') + JSON.stringify(k) + ':', r);
          f.wrote ||= r !== undefined;
        }
      } else {
        if (f.isAsync && f.ready === undefined) {
          this.pending = Promise.resolve(f.it.next()).then((r) => void (f.ready = r));
          return 'wait';
        }
        const r = f.ready ?? (f.it as Iterator<unknown>).next();
        f.ready = undefined;
        if (r.done) this.leave(']');
        else this.item(f, r.value);
      }
    }
  }

  /** Closes the sequences still open (early stop or error), as `for…of` would. */
  close(): void {
    for (const f of this.stack) {
      if (!(f instanceof SeqFrame)) continue;
      try {
        Promise.resolve(f.it.return?.()).catch(() => {});
      } catch {
        // Its error does not matter: we are stopping anyway.
      }
    }
    this.stack.length = 0;
  }

  /**
   * SerializeJSONProperty up to the container: the text of a primitive or a small subtree,
   * undefined to omit, or a frame to walk. `tooBig`: weigh() already refused this very value.
   */
  private resolve(v: unknown, key: string | number, tooBig = false): string | Frame | undefined {
    if ((typeof v === 'object' && v !== null) || typeof v === 'function' || typeof v === 'bigint') {
      const toJSON = (v as Dict).toJSON;
      if (typeof toJSON === 'function') [v, tooBig] = [toJSON.call(v, String(key)), false];
    }
    if (typeof v !== 'object' || v === null) return primitive(v);
    // weigh() refuses a root with a toJSON, so a toJSON result is never converted twice.
    if (!tooBig && weigh(v, SMALL_WEIGHT, 0) >= 0) return JSON.stringify(v);
    if (types.isBoxedPrimitive(v)) return primitive(unbox(v));
    if (Array.isArray(v)) return new ArrayFrame(v);
    const o = v as Dict;
    if (typeof o[Symbol.asyncIterator] === 'function') {
      return new SeqFrame(o, (o[Symbol.asyncIterator] as () => AsyncIterator<unknown>)(), true);
    }
    if (isLazy(o)) return new SeqFrame(o, (o[Symbol.iterator] as () => Iterator<unknown>)(), false);
    return new ObjectFrame(o);
  }

  /**
   * One element of an array or sequence. Runs of small elements are stringified as one array with
   * its brackets cut off: one native call per ~20 KB rather than per record nearly halved the cost
   * on S0. weigh() refuses elements with a toJSON, which would get their index in the batch.
   */
  private item(f: ArrayFrame | SeqFrame, v: unknown): void {
    const i = f.i++;
    let left = this.fit(v, this.batchLeft);
    if (left < 0 && this.batch.length > 0) {
      this.flush();
      left = this.fit(v, SMALL_WEIGHT);
    }
    if (left < 0) return this.place(i === 0 ? '' : ',', this.resolve(v, i, true) ?? 'null');
    if (this.batch.length === 0) this.batchSep = i === 0 ? '' : ',';
    this.batch.push(v);
    this.batchLeft = left;
  }

  private fit(v: unknown, left: number): number {
    if (typeof v === 'object' && v !== null) return weigh(v, left - 1, 0);
    // A function or a BigInt may carry a toJSON of its own: resolve() handles those.
    return typeof v === 'function' || typeof v === 'bigint' ? -1 : weighValue(v, left - 1, 0);
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const s = JSON.stringify(this.batch);
    this.batch.length = 0;
    this.batchLeft = SMALL_WEIGHT;
    this.parts.push(this.batchSep + s.slice(1, -1));
    this.buffered += s.length;
  }

  private place(prefix: string, r: string | Frame): void {
    if (typeof r === 'string') return this.out(prefix + r);
    if (this.open.has(r.of)) throw new TypeError('Converting circular structure to JSON');
    this.open.add(r.of);
    this.out(prefix + (r instanceof ObjectFrame ? '{' : '['));
    this.stack.push(r);
  }

  private leave(close: string): void {
    this.open.delete(this.stack.pop()!.of);
    this.out(close);
  }

  private out(s: string): void {
    this.flush();
    this.parts.push(s);
    this.buffered += s.length;
  }
}

/**
 * Slice bookkeeping, shared by the producer and the writer. A slice ends only when the event loop
 * really turned; awaiting a promise does not prove it. A 'drain' after a write the kernel took at
 * once comes by process.nextTick, an async generator's item by microtasks: counting those as
 * turns let one "slice" hold the loop for over 100 ms (measured).
 */
class SliceClock {
  slices = 1;
  maxSliceMs = 0;
  private start = performance.now();
  constructor(private readonly budgetMs: number) {}
  get deadline(): number {
    return this.start + this.budgetMs;
  }
  /** Gives the loop a turn (setImmediate); a new slice starts after it. */
  async turn(): Promise<void> {
    this.next(performance.now());
    await nextTurn();
    this.start = performance.now();
  }
  /** Awaits `p`. If an immediate set before it has run meanwhile, the loop turned: a new slice. */
  async wait(p: Promise<unknown>): Promise<boolean> {
    const began = performance.now();
    let turned = false;
    const marker = setImmediate(() => (turned = true));
    try {
      await p;
    } finally {
      clearImmediate(marker);
    }
    if (turned) this.next(began);
    return turned;
  }
  private next(end: number): void {
    this.maxSliceMs = Math.max(this.maxSliceMs, end - this.start);
    this.slices++;
    this.start = performance.now();
  }
}

/** Yields the chunks, giving the loop a turn between slices. Returns false if stopped early. */
async function* drive(s: Serializer, clock: SliceClock, signal?: AbortSignal): AsyncGenerator<string, boolean> {
  try {
    for (;;) {
      if (signal?.aborted) return false;
      const state = s.pump(clock.deadline);
      if (state === 'done' || state === 'full' || state === 'slice') {
        if (s.buffered > 0) yield s.take();
        if (state === 'done') return true;
        // The consumer may have waited for 'drain' meanwhile, which may have started a new slice.
        if (state === 'slice' && performance.now() >= clock.deadline) await clock.turn();
      } else if ((await clock.wait(s.pending!)) && s.buffered > 0) {
        yield s.take(); // the item took I/O: send what we have rather than wait on a slow source
      }
    }
  } finally {
    s.close();
  }
}

function checkOptions(o: JsonStreamOptions): { sliceMs: number; chunkSize: number } {
  const { sliceMs = DEFAULT_SLICE_MS, chunkSize = DEFAULT_CHUNK_SIZE } = o;
  if (!(sliceMs > 0)) throw new RangeError(`sliceMs must be a number of milliseconds above 0, got ${String(sliceMs)}.`);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a whole number of characters above 0, got ${String(chunkSize)}.`);
  }
  return { sliceMs, chunkSize };
}

/**
 * The JSON text of `value` as chunks whose concatenation is `JSON.stringify(value)`, produced in
 * time slices: once a slice's budget is spent the generator waits one turn of the event loop
 * (setImmediate), so a `for await` over it holds the loop for about `sliceMs` at a time (plus what
 * the consumer does with each chunk). Lazy sequences (see the module comment) become arrays,
 * pulled as needed. Works for any sink: a response, a file, a hash.
 *
 * @throws TypeError for a BigInt or a circular structure, as JSON.stringify does, and for a
 * top-level value JSON.stringify turns into `undefined` (undefined, a function, a symbol): no text
 * is not JSON. A lazy sequence's error is thrown through; an aborted `signal` throws its reason.
 * Sequences still open are closed (`return()`) whenever the generator stops early.
 */
export async function* jsonChunks(value: unknown, options: JsonStreamOptions = {}): AsyncGenerator<string, void, undefined> {
  const { sliceMs, chunkSize } = checkOptions(options);
  const completed = yield* drive(new Serializer(value, chunkSize), new SliceClock(sliceMs), options.signal);
  if (!completed) options.signal?.throwIfAborted();
}

/**
 * Writes `value` as the JSON body of `res` (an Express response is one) in time slices, see
 * {@link jsonChunks}. Sets `content-type: application/json; charset=utf-8` unless one is set; the
 * status stays as the caller set it. Honours back-pressure (nothing more is produced until
 * 'drain'), and stops all work, pulling of lazy sequences included, as soon as the client goes
 * away or `signal` aborts.
 *
 * Resolves with `completed: false` when stopped early; rejects on a serialization error or a lazy
 * sequence's error. Either way `res.headersSent` says what became of `res`: if false, nothing was
 * written and the caller still owns it (to answer 500, say); if true, it was destroyed, because a
 * truncated body under a 200 would be silently wrong.
 */
export async function streamJson(res: ServerResponse, value: unknown, options: JsonStreamOptions = {}): Promise<StreamResult> {
  const began = performance.now();
  const { sliceMs, chunkSize } = checkOptions(options);
  if (res.writableEnded) throw new Error('streamJson: the response was already ended.');
  const clock = new SliceClock(sliceMs);
  let bytes = 0;
  const result = (completed: boolean): StreamResult => ({
    completed,
    bytes,
    slices: clock.slices,
    maxSliceMs: clock.maxSliceMs,
    durationMs: performance.now() - began,
  });
  if (res.destroyed) return result(false);

  const stop = new AbortController();
  const stopped = new Promise<'stopped'>((resolve) => stop.signal.addEventListener('abort', () => resolve('stopped')));
  // 'close' also follows a normal 'finish'; only a close before it means the client left.
  const onClose = (): void => void (res.writableFinished || stop.abort());
  const onAbort = (): void => stop.abort();
  res.on('close', onClose);
  options.signal?.addEventListener('abort', onAbort);
  if (options.signal?.aborted) stop.abort();
  // Node drops the body of a HEAD response: producing it would be all cost and no output.
  const chunks = drive(new Serializer(res.req?.method === 'HEAD' ? [] : value, chunkSize), clock, stop.signal);
  try {
    for (;;) {
      // Raced with the stop, so a client that leaves while a slow source is awaited is seen now.
      const next = await Promise.race([chunks.next(), stopped]);
      if (next === 'stopped' || next.done) break;
      if (!res.headersSent && !res.hasHeader('content-type')) res.setHeader('content-type', 'application/json; charset=utf-8');
      bytes += Buffer.byteLength(next.value);
      if (!res.write(next.value)) await clock.wait(once(res, 'drain', { signal: stop.signal }));
    }
    if (!stop.signal.aborted) {
      res.end();
      await once(res, 'finish', { signal: stop.signal });
    }
  } catch (err) {
    if (!stop.signal.aborted) {
      if (res.headersSent) res.destroy();
      throw err;
    }
  } finally {
    res.off('close', onClose);
    options.signal?.removeEventListener('abort', onAbort);
    stop.abort();
    // Ends the producer, closing its open sequences, once its current await settles.
    chunks.return(false).catch(() => {});
  }
  if (!res.writableFinished && res.headersSent) res.destroy();
  return result(res.writableFinished);
}
