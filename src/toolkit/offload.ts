/**
 * Thread-pool offload (piscina): CPU-heavy or blocking work runs on worker threads, so the
 * worker's event loop keeps serving small requests. One pool per drover worker process, created
 * on first use.
 *
 *   const out = await offload('myTask', arg, { filename })      // your own task file
 *
 * Request bodies go through offloadBody()/parseJsonOffloaded() (offload-body.ts), which keep small
 * ones off the pool.
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

/** drover's own task file (offload-tasks.ts), the default for every helper here. */
export const BUILTIN_TASKS = path.join(__dirname, 'offload-tasks.js');
const pools = new Map<string, Piscina>();
/** Tasks queued or running per pool: piscina counts the queued ones only. */
const inFlight = new Map<string, number>();

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
  const key = path.resolve(o.filename ?? BUILTIN_TASKS);
  const pool = offloadPool(key, o.pool);
  const full = () => new HttpError(503, 'OFFLOAD_QUEUE_FULL', 'the thread pool queue is full; retry shortly');
  if (pool.threads.length >= pool.options.maxThreads && pool.queueSize >= (pool.options.maxQueue as number)) throw full();
  let result: T | TaskError;
  inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
  try {
    result = (await pool.run(arg, { name, transferList: o.transferList as never, signal: o.signal })) as T | TaskError;
  } catch (err) {
    // piscina has no error code for this; the check above normally answers first.
    if ((err as Error).message?.includes('Task queue is at limit')) throw full();
    throw err;
  } finally {
    inFlight.set(key, inFlight.get(key)! - 1);
  }
  return taskResult(result);
}

/** A task's return value, or the HttpError a returned TaskError stands for (either lane). */
export function taskResult<T>(result: T | TaskError): T {
  if (result && typeof result === 'object' && 'droverTaskError' in result) {
    const e = (result as TaskError).droverTaskError;
    throw new HttpError(e.status, e.code, e.message);
  }
  return result as T;
}

/**
 * Tasks of a task file's pool that are queued or running right now (drover's built-in tasks by
 * default): a gauge for your metrics, and how the S3 demo shows which lane was busy.
 */
export function offloadInFlight(filename = BUILTIN_TASKS): number {
  return inFlight.get(path.resolve(filename)) ?? 0;
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

/** Closes every pool (drain: lets the worker exit promptly). */
export async function closePools(): Promise<void> {
  await Promise.all([...pools.values()].map((p) => p.destroy()));
  pools.clear();
}
