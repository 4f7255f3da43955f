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
import { Serializer } from './json-serializer';

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
