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

/** A client error to return from a task: `offload()` rejects with the matching HttpError. */
export function taskError(status: number, code: string, message: string): TaskError {
  return { droverTaskError: { status, code, message } };
}

/** Turns an HttpError thrown inside a task into a returnable TaskError; rethrows anything else. */
export function asTaskError(err: unknown): TaskError {
  if (err instanceof HttpError) return taskError(err.status, err.code, err.message);
  throw err;
}

export function parseJson(arg: { buffer: ArrayBuffer; maxDepth?: number }): unknown {
  try {
    return parseJsonBody(new Uint8Array(arg.buffer), arg.maxDepth);
  } catch (err) {
    return asTaskError(err);
  }
}
