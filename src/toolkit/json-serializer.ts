/**
 * The resumable JSON walk behind {@link streamJson}: produces exactly `JSON.stringify(value)`,
 * in pieces, stopping wherever a time budget or a buffer limit says and resuming later. See
 * json-stream.ts for the rules (lazy sequences, differences from JSON.stringify).
 */
import { types } from 'node:util';

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
export class Serializer {
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

