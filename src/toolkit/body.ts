import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error';

export interface RawBodyOptions {
  /** Largest body accepted, in bytes: beyond it the request is refused with 413. */
  limit: number;
  /** Accepted media types (without parameters). @defaultValue ['application/json'] */
  types?: readonly string[];
}

/**
 * Bodies bigger than this are never joined in one step on the loop. Joining 25 MB of chunks at
 * the end is one copy of ~20 ms, most of it first-touch page faults of the new buffer: a declared
 * length is copied in chunk by chunk as it arrives instead, an undeclared one joined in slices.
 */
const JOIN_IN_STEPS_ABOVE = 64 * 1024;
/** Bytes joined per turn of the loop for an undeclared (chunked) body: well under a millisecond. */
const JOIN_SLICE_BYTES = 1024 * 1024;

const tooLarge = (limit: number) => new HttpError(413, 'BODY_TOO_LARGE', `body is larger than ${limit} bytes`);

/**
 * Reads a request body into one Buffer, enforcing the limit while streaming: a declared
 * Content-Length over the limit is refused before a byte is read, and an undeclared (chunked) body
 * is cut off as soon as it passes the limit, so an oversized upload never sits in memory. A big
 * body never holds the loop for its copy, and comes back in a Buffer that owns its whole
 * ArrayBuffer, so `transferable()` moves it to a thread without copying it again.
 */
export function readRawBody(req: IncomingMessage, o: RawBodyOptions): Promise<Buffer> {
  const types = o.types ?? ['application/json'];
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!types.includes(type)) {
    return Promise.reject(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `content-type must be ${types.join(' or ')}`));
  }
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > o.limit) return Promise.reject(tooLarge(o.limit));
  // node's parser delivers exactly Content-Length bytes, so a declared size is the final size.
  const into = declared !== undefined && Number.isSafeInteger(declared) && declared > JOIN_IN_STEPS_ABOVE ? declared : 0;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // Allocated on the first chunk, not at the headers: a client must send before it costs memory.
    // allocUnsafeSlow reserves address space; pages become resident as the body is copied in.
    let target: Buffer | undefined;
    let size = 0;
    const fail = (err: HttpError) => {
      cleanup();
      chunks.length = 0;
      target = undefined;
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > o.limit) return fail(tooLarge(o.limit));
      if (into) {
        target ??= Buffer.allocUnsafeSlow(into);
        if (size + chunk.length > into) return fail(new HttpError(400, 'BAD_BODY', 'the body is longer than its Content-Length'));
        chunk.copy(target, size);
      } else chunks.push(chunk);
      size += chunk.length;
    };
    const onEnd = () => {
      cleanup();
      if (target) resolve(size === into ? target : target.subarray(0, size));
      else if (size <= JOIN_IN_STEPS_ABOVE) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      else joinInSlices(chunks, size).then(resolve, reject);
    };
    const onAborted = () => fail(new HttpError(400, 'REQUEST_ABORTED', 'the client closed the request before the body ended'));
    const onError = () => fail(new HttpError(400, 'BAD_BODY', 'the request body could not be read'));
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAborted);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onAborted);
    req.on('error', onError);
  });
}

/** Joins chunks into one Buffer, about JOIN_SLICE_BYTES per turn of the event loop. */
async function joinInSlices(chunks: Buffer[], size: number): Promise<Buffer> {
  const out = Buffer.allocUnsafeSlow(size);
  let offset = 0;
  let sinceYield = 0;
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!;
    chunk.copy(out, offset);
    offset += chunk.length;
    sinceYield += chunk.length;
    chunks[i] = EMPTY; // let the socket's buffers go as soon as they are copied
    if (sinceYield >= JOIN_SLICE_BYTES) {
      sinceYield = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  return out;
}

const EMPTY = Buffer.alloc(0);
