/**
 * drover's built-in thread-pool tasks (each a named export, run with `offload(name, arg)`).
 * Errors meant for the client are returned, not thrown: an Error crossing the thread boundary
 * loses its class and fields, a plain object does not.
 */
import { HttpError } from './http-error';
import { parseJsonBody } from './json-parse';

export interface TaskError {
  droverTaskError: { status: number; code: string; message: string };
}

function asTaskError(err: unknown): TaskError {
  if (err instanceof HttpError) return { droverTaskError: { status: err.status, code: err.code, message: err.message } };
  throw err;
}

export function parseJson(arg: { buffer: ArrayBuffer; maxDepth?: number }): unknown {
  try {
    return parseJsonBody(new Uint8Array(arg.buffer), arg.maxDepth);
  } catch (err) {
    return asTaskError(err);
  }
}
