/**
 * Time-sliced JSON output: the same bytes as `JSON.stringify(value)`, produced in slices of a few
 * milliseconds with the event loop free in between, so one big response no longer holds every
 * other request on the worker (scenario S0: 23 MB of JSON held the loop for 300–500 ms).
 *
 * The serializer walks the value with an explicit stack, so it can stop anywhere and resume in the
 * next slice. Walking every value in JS would be several times slower than native
 * `JSON.stringify`, so any subtree that is provably small (a bounded probe, see `weigh`) is handed
 * to `JSON.stringify` whole; only the big containers above those subtrees are walked here.
 *
 * Lazy sequences: a non-array object with a `Symbol.asyncIterator` method, or an iterator (an
 * object with `next` and `Symbol.iterator` methods: generator objects, `map.values()`), is written
 * as a JSON array, pulling items only as slices need them. This applies at the top level and
 * nested anywhere. Other iterables (Map, Set, a class with only `Symbol.iterator`) stay objects and
 * render as `JSON.stringify` renders them, usually `{}`; pass `set.values()` to stream a Set.
 *
 * Known differences from `JSON.stringify`: no replacer or indentation; property getters of small
 * subtrees are read twice (once by the probe); nesting deeper than the JS stack allows works here
 * where `JSON.stringify` throws RangeError; a single huge string is escaped in one step.
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
   * A slice may overrun by the cost of one small subtree (well under a millisecond).
   * @defaultValue 5
   */
  sliceMs?: number;
  /**
   * Output is batched into chunks of about this many characters (≈ bytes for ASCII) before it is
   * yielded or written: one `res.write` per 64 KiB costs little, one per value would dominate.
   * A slice that ends flushes what it has.
   * @defaultValue 65536
   */
  chunkSize?: number;
  /** Stops the work. {@link jsonChunks} then throws the signal's reason; {@link streamJson} resolves. */
  signal?: AbortSignal;
}

/** What {@link streamJson} did. */
export interface StreamResult {
  /** The whole document was handed to the OS. False when the client left or the signal aborted. */
  completed: boolean;
  /** UTF-8 bytes written to the response body. */
  bytes: number;
  /** Slices the work was cut into (each ended by a turn of the event loop). */
  slices: number;
  /** Longest slice, in milliseconds: the longest time other requests had to wait for this one. */
  maxSliceMs: number;
  /** From the call to the end (or the abort), in milliseconds. */
  durationMs: number;
}

const DEFAULT_SLICE_MS = 5;
const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** performance.now() costs ~50 ns: look at the clock every this many steps or output characters. */
const CLOCK_EVERY_STEPS = 128;
const CLOCK_EVERY_CHARS = 16 * 1024;
/**
 * A subtree is stringified natively when it weighs at most this much (1 per value, plus 1 per 16
 * characters of string): about 20 KB of output, ~0.2 ms, so it never makes a slice overrun much.
 */
const SMALL_WEIGHT = 1024;
/** Deeper subtrees are walked here, which keeps the probe's cost bounded on long chains. */
const SMALL_DEPTH = 32;

const dateToJSON = Date.prototype.toJSON;
type Dict = Record<string | symbol, unknown>;

/** The lazy-sequence rule of this module (see the file comment). */
function isLazy(v: object): boolean {
  const o = v as Dict;
  return (
    typeof o[Symbol.asyncIterator] === 'function' ||
    (typeof o.next === 'function' && typeof o[Symbol.iterator] === 'function' && !Array.isArray(v))
  );
}

/**
 * Weight of the subtree under `v` minus `left`, or -1 as soon as it is too heavy, too deep, or
 * holds something `JSON.stringify` cannot be trusted with here: a lazy sequence, or a `toJSON`
 * other than Date's (its result could be anything). A cycle simply exhausts the budget.
 */
function weigh(v: object, left: number, depth: number): number {
  const toJSON = (v as Dict).toJSON;
  if (typeof toJSON === 'function') return toJSON === dateToJSON && depth > 0 ? left - 3 : -1;
  if (depth > SMALL_DEPTH) return -1;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && left >= 0; i++) left = weighValue(v[i], left - 1, depth);
    return left;
  }
  if (isLazy(v)) return -1;
  for (const k in v) {
    left = weighValue((v as Dict)[k], left - 1, depth);
    if (left < 0) return -1;
  }
  return left;
}

function weighValue(e: unknown, left: number, depth: number): number {
  if (typeof e === 'object' && e !== null) return weigh(e, left, depth + 1);
  return typeof e === 'string' ? left - (e.length >> 4) : left;
}

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

class ArrayFrame {
  i = 0;
  readonly n: number;
  constructor(readonly arr: readonly unknown[]) {
    this.n = arr.length;
  }
}
class ObjectFrame {
  i = 0;
  wrote = false;
  readonly keys: string[];
  constructor(readonly obj: Dict) {
    this.keys = Object.keys(obj);
  }
}
class SeqFrame {
  i = 0;
  ready: IteratorResult<unknown> | undefined;
  constructor(
    readonly source: object,
    readonly it: Iterator<unknown> | AsyncIterator<unknown>,
    readonly isAsync: boolean,
  ) {}
}
type Frame = ArrayFrame | ObjectFrame | SeqFrame;
type Pump = 'full' | 'slice' | 'wait' | 'done';

/** The resumable walk. Not exported: {@link jsonChunks} is its public face. */
class Serializer {
  private parts: string[] = [];
  /** Characters in `parts`. */
  buffered = 0;
  /** Set while an async sequence's next item is awaited ('wait'). */
  pending: Promise<void> | undefined;
  private readonly stack: Frame[] = [];
  /** Containers on the stack, for JSON.stringify's circular-structure TypeError. */
  private readonly open = new Set<object>();
  private started = false;
  /** Small elements waiting to be stringified together (see item()). */
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

  /** Runs until a chunk is full, the deadline passes, an async item must be awaited, or the end. */
  pump(deadline: number): Pump {
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
        const r = this.resolve(this.root, '');
        // JSON.stringify returns undefined here; an empty body is not JSON, so refuse instead.
        if (r === undefined) throw new TypeError('The value is not JSON-serializable: JSON.stringify would return undefined for it.');
        this.place('', r);
      } else if (f instanceof ArrayFrame) {
        if (f.i === f.n) this.leave(']');
        else this.item(f, f.arr[f.i]);
      } else if (f instanceof ObjectFrame) {
        if (f.i === f.keys.length) this.leave('}');
        else {
          const k = f.keys[f.i++]!;
          const r = this.resolve(f.obj[k], k);
          if (r !== undefined) this.place((f.wrote ? ',' : '') + JSON.stringify(k) + ':', r);
          f.wrote ||= r !== undefined;
        }
      } else {
        let item = f.ready;
        f.ready = undefined;
        if (f.isAsync && item === undefined) {
          this.pending = Promise.resolve(f.it.next()).then((r) => {
            f.ready = r;
            this.pending = undefined;
          });
          return 'wait';
        }
        item ??= (f.it as Iterator<unknown>).next();
        if (item.done) this.leave(']');
        else this.item(f, item.value);
      }
    }
  }

  /** Closes the sequences still open (early stop or error), as `for…of` would. */
  close(): void {
    for (const f of this.stack) {
      if (!(f instanceof SeqFrame) || typeof f.it.return !== 'function') continue;
      try {
        Promise.resolve(f.it.return()).catch(() => {});
      } catch {
        // Its own error does not matter any more: we are already stopping.
      }
    }
    this.stack.length = 0;
  }

  /**
   * JSON.stringify's SerializeJSONProperty, up to the container: the text of a primitive or small
   * subtree, undefined for "omit" (undefined, functions, symbols), or a frame to walk.
   */
  private resolve(v: unknown, key: string | number): string | Frame | undefined {
    if ((typeof v === 'object' && v !== null) || typeof v === 'function' || typeof v === 'bigint') {
      const toJSON = (v as Dict).toJSON;
      if (typeof toJSON === 'function') v = toJSON.call(v, String(key));
    }
    if (typeof v !== 'object' || v === null) return primitive(v);
    // weigh() refuses an object with its own toJSON, so a toJSON result is never converted twice.
    if (weigh(v, SMALL_WEIGHT, 0) >= 0) return JSON.stringify(v);
    if (types.isBoxedPrimitive(v)) return primitive(unbox(v));
    if (Array.isArray(v)) return new ArrayFrame(v);
    const o = v as Dict;
    if (typeof o[Symbol.asyncIterator] === 'function') {
      return new SeqFrame(v, (o[Symbol.asyncIterator] as () => AsyncIterator<unknown>)(), true);
    }
    if (isLazy(v)) return new SeqFrame(v, (o[Symbol.iterator] as () => Iterator<unknown>)(), false);
    return new ObjectFrame(o);
  }

  /**
   * One element of an array or sequence. Consecutive small elements are collected and stringified
   * as one array (its brackets cut off): one native call per ~20 KB instead of one per element
   * halves the cost on record lists. weigh() refuses elements with their own toJSON, which would
   * see their index in the batch rather than in the real array as their key.
   */
  private item(f: ArrayFrame | SeqFrame, v: unknown): void {
    const i = f.i++;
    let w = this.fit(v, this.batchLeft);
    if (w < 0 && this.batch.length > 0) {
      this.flush();
      w = this.fit(v, SMALL_WEIGHT);
    }
    if (w < 0) return this.place(i === 0 ? '' : ',', this.resolve(v, i) ?? 'null');
    if (this.batch.length === 0) this.batchSep = i === 0 ? '' : ',';
    this.batch.push(v);
    this.batchLeft = w;
  }

  private fit(v: unknown, left: number): number {
    if (typeof v === 'object' && v !== null) return weigh(v, left - 1, 0);
    // A function or BigInt may carry a toJSON of its own: those go through resolve().
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
    const container = r instanceof ArrayFrame ? r.arr : r instanceof ObjectFrame ? r.obj : r.source;
    if (this.open.has(container)) throw new TypeError('Converting circular structure to JSON');
    this.open.add(container);
    this.stack.push(r);
    this.out(prefix + (r instanceof ObjectFrame ? '{' : '['));
  }

  private leave(close: string): void {
    const f = this.stack.pop()!;
    this.open.delete(f instanceof ArrayFrame ? f.arr : f instanceof ObjectFrame ? f.obj : f.source);
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
 * really turned: awaiting a promise does not prove it. A 'drain' that follows a write the kernel
 * took at once arrives by process.nextTick, and an async generator's item by microtasks; treating
 * those as turns let one "slice" run for 100 ms and more.
 */
class SliceClock {
  slices = 1;
  maxSliceMs = 0;
  private start = performance.now();
  constructor(private readonly budgetMs: number) {}
  get deadline(): number {
    return this.start + this.budgetMs;
  }
  /** Gives the loop a turn (setImmediate) and starts a new slice. */
  async turn(): Promise<void> {
    this.next(performance.now());
    await nextTurn();
    this.start = performance.now();
  }
  /** Awaits `p`; if an immediate set before it ran meanwhile, the loop turned: a new slice. */
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
  /** Ends the current slice at `end` and starts the next one now. */
  private next(end: number): void {
    this.maxSliceMs = Math.max(this.maxSliceMs, end - this.start);
    this.slices++;
    this.start = performance.now();
  }
}

/** Yields the chunks, yielding to the event loop between slices. Returns false if stopped early. */
async function* drive(s: Serializer, clock: SliceClock, signal?: AbortSignal): AsyncGenerator<string, boolean> {
  try {
    for (;;) {
      if (signal?.aborted) return false;
      const state = s.pump(clock.deadline);
      if (state === 'done' || state === 'full') {
        if (s.buffered > 0) yield s.take();
        if (state === 'done') return true;
      } else if (state === 'slice') {
        if (s.buffered > 0) yield s.take();
        // The consumer may have waited for 'drain' meanwhile, which may have started a new slice.
        if (performance.now() >= clock.deadline) await clock.turn();
      } else if ((await clock.wait(s.pending!)) && s.buffered > 0) {
        // The item took I/O: send what is buffered now rather than wait on a slow source.
        yield s.take();
      }
    }
  } finally {
    s.close();
  }
}

function checkOptions(o: JsonStreamOptions): { sliceMs: number; chunkSize: number } {
  const sliceMs = o.sliceMs ?? DEFAULT_SLICE_MS;
  const chunkSize = o.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!(sliceMs > 0)) throw new RangeError(`sliceMs must be a number of milliseconds above 0, got ${String(o.sliceMs)}.`);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a whole number of characters above 0, got ${String(o.chunkSize)}.`);
  }
  return { sliceMs, chunkSize };
}

/**
 * The JSON text of `value` as string chunks whose concatenation equals `JSON.stringify(value)`,
 * produced in time slices: when a slice's budget is spent the generator waits one turn of the
 * event loop (setImmediate) before going on, so consuming it with `for await` never blocks the
 * loop for much longer than `sliceMs`. Lazy sequences (see the module comment) become arrays and
 * are pulled only as needed. Usable for any sink: a file, a socket, a hash.
 *
 * @throws TypeError for a BigInt or a circular structure, as JSON.stringify does, and for a
 * top-level value JSON.stringify would turn into `undefined` (undefined, a function, a symbol),
 * since no text is not JSON. Errors of a lazy sequence are thrown through. When `signal` aborts,
 * throws its reason. Open sequences are closed (`return()`) whenever the generator stops early.
 */
export async function* jsonChunks(value: unknown, options: JsonStreamOptions = {}): AsyncGenerator<string, void, undefined> {
  const { sliceMs, chunkSize } = checkOptions(options);
  const completed = yield* drive(new Serializer(value, chunkSize), new SliceClock(sliceMs), options.signal);
  if (!completed) options.signal?.throwIfAborted();
}

/**
 * Writes `value` as the JSON body of `res` (an Express response is one) without blocking the
 * event loop: see {@link jsonChunks}. Sets `content-type: application/json; charset=utf-8` unless
 * a content type is set; the status is left as the caller set it. Honours back-pressure: when
 * `res.write()` returns false, nothing more is produced until 'drain'. Stops all work, including
 * pulling lazy sequences, as soon as the client goes away or `signal` aborts.
 *
 * Resolves with `completed: false` when stopped early. Rejects on a serialization error or an
 * error of a lazy sequence. In both cases, `res.headersSent` tells what happened to `res`: if
 * false, nothing was written and the caller still owns the response (e.g. to answer 500); if
 * true, the response was destroyed, because a truncated body with a 200 would be silently wrong.
 */
export async function streamJson(res: ServerResponse, value: unknown, options: JsonStreamOptions = {}): Promise<StreamResult> {
  const began = performance.now();
  const { sliceMs, chunkSize } = checkOptions(options);
  if (res.writableEnded) throw new Error('streamJson: the response was already ended.');
  const clock = new SliceClock(sliceMs);
  const result = (completed: boolean): StreamResult => ({
    completed,
    bytes,
    slices: clock.slices,
    maxSliceMs: clock.maxSliceMs,
    durationMs: performance.now() - began,
  });
  let bytes = 0;
  if (res.destroyed) return result(false);

  const stop = new AbortController();
  const stopped = new Promise<'stopped'>((resolve) => stop.signal.addEventListener('abort', () => resolve('stopped')));
  // 'close' also follows a normal 'finish'; only a close before it means the client left.
  const onClose = (): void => {
    if (!res.writableFinished) stop.abort();
  };
  const onAbort = (): void => stop.abort();
  res.on('close', onClose);
  options.signal?.addEventListener('abort', onAbort);
  if (options.signal?.aborted) stop.abort();
  const chunks = drive(new Serializer(value, chunkSize), clock, stop.signal);
  try {
    for (;;) {
      // Raced with 'stopped' so a client that leaves while a slow source is awaited is seen now.
      const next = await Promise.race([chunks.next(), stopped]);
      if (next === 'stopped' || next.done) break;
      if (!res.headersSent && !res.hasHeader('content-type')) {
        res.setHeader('content-type', 'application/json; charset=utf-8');
      }
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
    // Ends the producer (and closes the sequences it has open) once its current await settles.
    chunks.return(false).catch(() => {});
  }
  const completed = res.writableFinished;
  if (!completed && res.headersSent && !res.destroyed) res.destroy();
  return result(completed);
}
