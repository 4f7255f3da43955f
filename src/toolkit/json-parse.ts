import { HttpError } from './http-error';

/** Default maximum nesting of request bodies: deep enough for real documents, far from V8's limits. */
export const DEFAULT_MAX_DEPTH = 256;

/**
 * Default largest body parsed on the event loop rather than on the thread pool, in bytes. Parsing
 * with the checks below plus a validation pass costs ~7 µs per KB, so 32 KiB stays near a quarter
 * of a millisecond on the loop: far less than waiting behind a big body's parse on a busy thread
 * (ADR 0013).
 */
export const DEFAULT_INLINE_MAX_BYTES = 32 * 1024;

/** Where a body is parsed: `'inline'` on the event loop, `'pool'` on the thread pool. */
export type BodyLane = 'inline' | 'pool';

/**
 * The lane for a body of `byteLength` bytes: at most `inlineMaxBytes` parses inline, anything
 * bigger goes to the pool. Small bodies never queue for a thread, so a 2 KB body cannot wait behind
 * a 25 MB one; big ones never hold the loop.
 */
export function bodyLane(byteLength: number, inlineMaxBytes = DEFAULT_INLINE_MAX_BYTES): BodyLane {
  if (!(inlineMaxBytes >= 0)) throw new TypeError(`inlineMaxBytes must be a number of bytes, 0 or more (got ${inlineMaxBytes})`);
  return byteLength <= inlineMaxBytes ? 'inline' : 'pool';
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The nesting depth of a JSON text, in one pass over its bytes, without parsing. `JSON.parse`
 * accepts 100,000 levels, but `JSON.stringify` of the result throws and recursive code that walks
 * it overflows the stack: bodies deeper than the limit are refused before they are parsed.
 * Returns the depth, or stops early and returns max + 1.
 */
export function jsonDepth(bytes: Uint8Array, max: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > max) return deepest;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/**
 * Strict JSON body parsing: invalid UTF-8 is a 400 (express.json() would replace it with U+FFFD
 * silently), nesting beyond `maxDepth` is a 400, malformed JSON is a 400 with the parser's
 * position. Pure: the one implementation both lanes run (on the event loop or in a worker thread).
 */
export function parseJsonBody(bytes: Uint8Array, maxDepth = DEFAULT_MAX_DEPTH): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new HttpError(400, 'INVALID_UTF8', 'the body is not valid UTF-8');
  }
  if (jsonDepth(bytes, maxDepth) > maxDepth) {
    throw new HttpError(400, 'TOO_DEEP', `JSON nesting deeper than ${maxDepth} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'MALFORMED_JSON', `malformed JSON: ${(err as Error).message}`);
  }
}
