/**
 * Thread-pool offload (piscina): CPU-heavy or blocking work runs on worker threads, so the
 * worker's event loop keeps serving small requests. One pool per drover worker process, created
 * on first use.
 *
 *   const value = await parseJsonOffloaded(bodyBytes);          // parse + depth/UTF-8 checks
 *   const out = await offload('myTask', arg, { filename })      // your own task file
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import { HttpError } from './http-error';
import type { TaskError } from './offload-tasks';

export interface PoolOptions {
  /** Threads per worker process. Workers × threads should not exceed the cores by much. @defaultValue max(1, cores / 2), or DROVER_OFFLOAD_THREADS */
  maxThreads?: number;
  /** Tasks queued beyond the busy threads before `offload` rejects with 503. @defaultValue 1000 */
  maxQueue?: number;
}

const BUILTIN_TASKS = path.join(__dirname, 'offload-tasks.js');
const pools = new Map<string, Piscina>();

function defaultThreads(): number {
  const env = Number(process.env.DROVER_OFFLOAD_THREADS);
  return Number.isInteger(env) && env > 0 ? env : Math.max(1, Math.floor(os.availableParallelism() / 2));
}

/** The pool for a task file (drover's built-in tasks by default), created once per process. */
export function offloadPool(filename = BUILTIN_TASKS, o: PoolOptions = {}): Piscina {
  let pool = pools.get(filename);
  if (!pool) {
    const maxThreads = o.maxThreads ?? defaultThreads();
    pool = new Piscina({ filename, minThreads: 1, maxThreads, maxQueue: o.maxQueue ?? 1000, idleTimeout: 30_000 });
    pools.set(filename, pool);
  }
  return pool;
}

/** Runs the named export of the task file on the pool. Built-in task errors come back as HttpErrors. */
export async function offload<T>(name: string, arg: unknown, o: { filename?: string; transferList?: ArrayBuffer[] } = {}): Promise<T> {
  const pool = offloadPool(o.filename);
  let result: T | TaskError;
  try {
    result = (await pool.run(arg, { name, transferList: o.transferList as never })) as T | TaskError;
  } catch (err) {
    if ((err as Error).message?.includes('Task queue is at limit')) {
      throw new HttpError(503, 'OFFLOAD_QUEUE_FULL', 'the thread pool queue is full; retry shortly');
    }
    throw err;
  }
  if (result && typeof result === 'object' && 'droverTaskError' in result) {
    const e = (result as TaskError).droverTaskError;
    throw new HttpError(e.status, e.code, e.message);
  }
  return result as T;
}

/**
 * The bytes as a transferable ArrayBuffer: moved to the thread without a copy when the Buffer
 * owns its whole ArrayBuffer (large bodies do), copied otherwise (small, pooled Buffers).
 */
export function transferable(bytes: Uint8Array): ArrayBuffer {
  const ab = bytes.buffer as ArrayBuffer;
  if (bytes.byteOffset === 0 && bytes.byteLength === ab.byteLength) return ab;
  return ab.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** Parses a JSON body on the pool (UTF-8, depth and syntax checks as in parseJsonBody). */
export function parseJsonOffloaded(bytes: Uint8Array, maxDepth?: number): Promise<unknown> {
  const buffer = transferable(bytes);
  return offload('parseJson', { buffer, maxDepth }, { transferList: [buffer] });
}

/** Closes every pool (drain: lets the worker exit promptly). */
export async function closePools(): Promise<void> {
  await Promise.all([...pools.values()].map((p) => p.destroy()));
  pools.clear();
}
