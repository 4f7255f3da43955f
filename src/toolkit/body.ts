import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error';

export interface RawBodyOptions {
  /** Largest body accepted, in bytes: beyond it the request is refused with 413. */
  limit: number;
  /** Accepted media types (without parameters). @defaultValue ['application/json'] */
  types?: readonly string[];
}

/**
 * Reads a request body into one Buffer, enforcing the limit while streaming: a declared
 * Content-Length over the limit is refused before a byte is read, and an undeclared (chunked) body
 * is cut off as soon as it passes the limit, so an oversized upload never sits in memory. The
 * connection is marked to close; node discards whatever the client still sends.
 */
export function readRawBody(req: IncomingMessage, o: RawBodyOptions): Promise<Buffer> {
  const types = o.types ?? ['application/json'];
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!types.includes(type)) {
    return Promise.reject(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `content-type must be ${types.join(' or ')}`));
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > o.limit) {
    return Promise.reject(new HttpError(413, 'BODY_TOO_LARGE', `body is larger than ${o.limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: HttpError) => {
      cleanup();
      chunks.length = 0;
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > o.limit) return fail(new HttpError(413, 'BODY_TOO_LARGE', `body is larger than ${o.limit} bytes`));
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
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
