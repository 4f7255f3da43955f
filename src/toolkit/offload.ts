/**
 * Thread-pool offload (piscina): CPU-heavy or blocking work runs on worker threads, so the
 * worker's event loop keeps serving small requests. One pool per drover worker process, created
 * on first use.
 *
 *   const value = await parseJsonOffloaded(bodyBytes);          // parse + depth/UTF-8 checks
 *   const out = await offload('myTask', arg, { filename })      // your own task file
 */
import * as path from 'node:path';
import { Piscina } from 'piscina';
import { detectCpuLimit } from '../cpus';
import { HttpError } from './http-error';
import type { TaskError } from './offload-tasks';

export interface PoolOptions {
  /**
   * Threads of this pool. For CPU work, workers × threads should not exceed the cores by much;
   * for blocking IO (a synchronous SDK) more threads are fine. Each task file has its own pool.
   * @defaultValue max(1, CPUs / 2) (cgroup-aware), or DROVER_OFFLOAD_THREADS
   */
  maxThreads?: number;
  /** Tasks queued beyond the busy threads before `offload` rejects with 503. @defaultValue 1000 */
  maxQueue?: number;
}

const BUILTIN_TASKS = path.join(__dirname, 'offload-tasks.js');
const pools = new Map<string, Piscina>();

function defaultThreads(): number {
  const env = Number(process.env.DROVER_OFFLOAD_THREADS);
  return Number.isInteger(env) && env > 0 ? env : Math.max(1, Math.floor(detectCpuLimit().count / 2));
}

/**
 * The pool for a task file (drover's built-in tasks by default), created once per process on
 * first use. Options apply when the pool is created: pass them on the first call (or call this
 * at start-up); a later call with different options gets the existing pool.
 */
export function offloadPool(filename = BUILTIN_TASKS, o: PoolOptions = {}): Piscina {
  const key = path.resolve(filename);
  let pool = pools.get(key);
  if (!pool) {
    const maxThreads = o.maxThreads ?? defaultThreads();
    pool = new Piscina({ filename: key, minThreads: 1, maxThreads, maxQueue: o.maxQueue ?? 1000, idleTimeout: 30_000 });
    pools.set(key, pool);
  }
  return pool;
}

/** Runs the named export of the task file on the pool. Built-in task errors come back as HttpErrors. */
export async function offload<T>(
  name: string,
  arg: unknown,
  o: { filename?: string; pool?: PoolOptions; transferList?: ArrayBuffer[]; signal?: AbortSignal } = {},
): Promise<T> {
  const pool = offloadPool(o.filename, o.pool);
  const full = () => new HttpError(503, 'OFFLOAD_QUEUE_FULL', 'the thread pool queue is full; retry shortly');
  if (pool.threads.length >= pool.options.maxThreads && pool.queueSize >= (pool.options.maxQueue as number)) throw full();
  let result: T | TaskError;
  try {
    result = (await pool.run(arg, { name, transferList: o.transferList as never, signal: o.signal })) as T | TaskError;
  } catch (err) {
    // piscina has no error code for this; the check above normally answers first.
    if ((err as Error).message?.includes('Task queue is at limit')) throw full();
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
