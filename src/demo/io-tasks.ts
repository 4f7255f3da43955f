/**
 * S1's blocking upstream call, shared by two modes of `GET /upstream`:
 * - `blocking` calls {@link blockingUpstreamCall} on the worker's event loop (the field report's
 *   failing case: sync IO in an async handler);
 * - `offload` runs the very same export on the piscina pool (this file is the task file), so only
 *   a pool thread blocks.
 *
 * The call is a synchronous HTTP GET that sleeps while it waits (./sync-http: a helper thread
 * makes the request, the calling thread sleeps in Atomics.wait), as a blocking HTTP client does:
 * it holds its thread for the whole call and costs almost no CPU. Errors are returned as plain
 * objects, not thrown: an Error crossing the thread boundary loses its fields, and drover's
 * `offload()` turns `droverTaskError` results into HttpErrors.
 */
import { taskError, type TaskError } from '../toolkit/offload-tasks';
import { httpGetSync } from './sync-http';

/** What the call needs: the full upstream URL and the deadline for the whole exchange. */
export interface BlockingCallArg {
  url: string;
  timeoutMs: number;
}

/** The upstream's JSON body and how long the call took, as seen by the calling thread. */
export interface BlockingCallOk {
  body: { ok?: boolean; waitedMs?: number };
  upstreamMs: number;
}

/** drover's TaskError: `offload()` turns it into an HttpError. */
export type BlockingCallError = TaskError;

/**
 * Calls the upstream synchronously: blocks the calling thread until the answer, an error, or
 * `timeoutMs`. 502 when the upstream is unreachable or answers badly, 504 when it is too slow.
 */
export function blockingUpstreamCall(arg: BlockingCallArg): BlockingCallOk | BlockingCallError {
  const started = performance.now();
  const r = httpGetSync(arg.url, arg.timeoutMs);
  const upstreamMs = Math.round(performance.now() - started);
  if (r.kind === 'timeout') return taskError(504, 'UPSTREAM_TIMEOUT', `the upstream did not answer within ${arg.timeoutMs} ms`);
  if (r.kind === 'error') {
    if (r.code === 'HELPER_NO_ANSWER') return taskError(502, 'UPSTREAM_CALL_FAILED', 'the blocking upstream call failed');
    if (r.code === 'TOO_LARGE') return taskError(502, 'UPSTREAM_BAD_RESPONSE', 'the upstream answered more than 1 MiB');
    return taskError(502, 'UPSTREAM_UNREACHABLE', `the upstream could not be reached (${r.code})`);
  }
  if (r.status !== 200) return taskError(502, 'UPSTREAM_BAD_RESPONSE', `the upstream answered status ${r.status}`);
  try {
    return { body: JSON.parse(r.body) as BlockingCallOk['body'], upstreamMs };
  } catch {
    return taskError(502, 'UPSTREAM_BAD_RESPONSE', 'the upstream answered something that is not JSON');
  }
}
