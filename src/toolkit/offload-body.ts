/**
 * Request-body tasks in two lanes. A body small enough to parse in well under a millisecond runs
 * its task right here, on the event loop; a bigger one runs the same task on the thread pool. The
 * pool has few threads (one on a 2-core machine), so sending every body there made a 2 KB body's
 * microseconds of parsing wait behind a 25 MB body's half second (ADR 0013).
 *
 *   const body = await parseJsonOffloaded(bytes);                            // JSON with drover's checks
 *   const out = await offloadBody('ingest', bytes, {}, { filename: TASKS }); // your parse + validate task
 *
 * Both lanes call the same exported function with the same argument, so checks, results and
 * errors cannot drift apart.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bodyLane, DEFAULT_INLINE_MAX_BYTES } from './json-parse';
import { BUILTIN_TASKS, offload, taskResult, transferable, type PoolOptions } from './offload';
import type { TaskError } from './offload-tasks';

export interface BodyTaskOptions {
  /**
   * Task file whose named export runs, on the pool for big bodies and in this thread for small
   * ones: it is loaded in both places, so keep its top level free of side effects.
   * @defaultValue drover's built-in tasks (`parseJson`)
   */
  filename?: string;
  /**
   * Bodies of at most this many bytes run their task on the event loop; bigger ones on the pool.
   * `0` sends every non-empty body to the pool; `Infinity` runs everything inline. Measure your
   * task before raising it: the point is that an inline task costs well under a millisecond.
   * @defaultValue 32768 (`DEFAULT_INLINE_MAX_BYTES`, 32 KiB)
   */
  inlineMaxBytes?: number;
  /** Options of the pool, when this call creates it (see `offloadPool`). */
  pool?: PoolOptions;
  /** Aborts the task while it waits for a thread. */
  signal?: AbortSignal;
}

/** The task's argument: the body as an ArrayBuffer, plus the caller's own fields. */
export type BodyTaskArg<E extends object = object> = E & { buffer: ArrayBuffer };

type TaskFn = (arg: unknown) => unknown;
const modules = new Map<string, Promise<unknown>>();

/** Loads a task file as piscina's threads do: require() first, import() for ESM. */
async function loadTasks(file: string): Promise<unknown> {
  try {
    return require(file) as unknown;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
  }
  return import(pathToFileURL(file).href);
}

async function inlineTask(filename: string, name: string): Promise<TaskFn> {
  const key = path.resolve(filename);
  let loading = modules.get(key);
  if (!loading) modules.set(key, (loading = loadTasks(key)));
  const mod = (await loading) as TaskFn | Record<string, unknown>;
  // piscina's rule: a module that is itself a function is the task, whatever the name.
  const fn = typeof mod === 'function' ? mod : (mod[name] ?? (mod.default as Record<string, unknown> | undefined)?.[name]);
  if (typeof fn !== 'function') throw new TypeError(`${key} has no task named ${name}`);
  return fn as TaskFn;
}

/**
 * Runs the task `name` of `o.filename` with `{ ...extra, buffer }`: inline for a body of at most
 * `inlineMaxBytes` bytes, on the pool (the bytes moved, not copied, when the Buffer owns its
 * memory, as `readRawBody`'s big bodies do: do not use `bytes` afterwards) for a bigger one. A returned `taskError` rejects with
 * its HttpError in both lanes. Return small results from the task: a big value coming back from
 * the pool is rebuilt on the event loop (structured clone), which costs more than parsing it.
 */
export async function offloadBody<T, E extends object = object>(name: string, bytes: Uint8Array, extra?: E, o: BodyTaskOptions = {}): Promise<T> {
  o.signal?.throwIfAborted();
  const buffer = transferable(bytes);
  const arg: BodyTaskArg<E> = { ...(extra as E), buffer };
  if (bodyLane(bytes.byteLength, o.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES) === 'pool') {
    return offload<T>(name, arg, { filename: o.filename, pool: o.pool, transferList: [buffer], signal: o.signal });
  }
  const task = await inlineTask(o.filename ?? BUILTIN_TASKS, name);
  return taskResult((await task(arg)) as T | TaskError);
}

/**
 * Strict JSON parsing (UTF-8, depth and syntax checks of `parseJsonBody`) with small bodies parsed
 * inline and big ones on the pool. The parsed value of a big body is copied back to the event loop
 * (structured clone: slower than the parse itself for 25 MB), so for big bodies prefer
 * `offloadBody` with a task that parses, validates and returns only what the handler needs.
 */
export function parseJsonOffloaded(bytes: Uint8Array, o: number | (BodyTaskOptions & { maxDepth?: number }) = {}): Promise<unknown> {
  const { maxDepth, ...rest } = typeof o === 'number' ? { maxDepth: o } : o;
  return offloadBody('parseJson', bytes, { maxDepth }, { ...rest, filename: BUILTIN_TASKS });
}
