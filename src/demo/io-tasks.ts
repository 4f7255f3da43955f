/**
 * S1's blocking upstream call, shared by two modes of `GET /upstream`:
 * - `blocking` calls {@link blockingUpstreamCall} on the worker's event loop (the field report's
 *   failing case: sync IO in an async handler);
 * - `offload` runs the very same export on the piscina pool (this file is the task file), so only
 *   a pool thread blocks.
 *
 * Node has no synchronous HTTP, so the request is made by a child Node process and waited for
 * with `execFileSync`: a real network call that holds the calling thread for its whole duration.
 * Errors are returned as plain objects, not thrown: an Error crossing the thread boundary loses
 * its fields, and drover's `offload()` turns `droverTaskError` results into HttpErrors.
 */
import { taskError, type TaskError } from '../toolkit/offload-tasks';
import { execFileSync } from 'node:child_process';

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

// Exit codes of the child script: the only channel that survives execFileSync besides stdout.
const EXIT_UNREACHABLE = 2;
const EXIT_TIMEOUT = 3;
const EXIT_BAD_STATUS = 4;

/**
 * The child: GET the URL, print the body, exit 0; else exit with a code naming the failure.
 * The deadline is absolute (epoch ms, set by the caller) so the child's own start-up counts
 * against it. node:http rather than fetch: loading undici adds ~20 ms to every call's start-up.
 */
const CHILD_SCRIPT = `
const url = new URL(process.argv[1]);
const deadline = Number(process.argv[2]);
setTimeout(() => process.exit(${EXIT_TIMEOUT}), Math.max(0, deadline - Date.now()));
const req = require(url.protocol === 'https:' ? 'node:https' : 'node:http').get(url, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (c) => (body += c));
  res.on('end', () => {
    if (res.statusCode !== 200) { process.stderr.write('status ' + res.statusCode); process.exit(${EXIT_BAD_STATUS}); }
    process.stdout.write(body);
    process.exit(0);
  });
  res.on('error', (e) => { process.stderr.write(String(e.code || e.message)); process.exit(${EXIT_UNREACHABLE}); });
});
req.on('error', (e) => { process.stderr.write(String(e.code || e.message)); process.exit(${EXIT_UNREACHABLE}); });
`;

/**
 * Start-up allowance on top of the request deadline for the outer `execFileSync` timeout. The
 * child enforces the deadline itself (exit 3); the outer timeout only catches a child that never
 * got going (Node start-up takes ~0.1 s idle, more on a busy machine).
 */
const SPAWN_SLACK_MS = 2_000;

/** The child's environment: no NODE_OPTIONS (an `--inspect` there would fight for the port). */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/**
 * Calls the upstream synchronously: blocks the calling thread until the answer, an error, or
 * `timeoutMs`. 502 when the upstream is unreachable or answers badly, 504 when it is too slow.
 */
export function blockingUpstreamCall(arg: BlockingCallArg): BlockingCallOk | BlockingCallError {
  const started = performance.now();
  let stdout: string;
  try {
    stdout = execFileSync(process.execPath, ['-e', CHILD_SCRIPT, arg.url, String(Date.now() + arg.timeoutMs)], {
      encoding: 'utf8',
      timeout: arg.timeoutMs + SPAWN_SLACK_MS,
      maxBuffer: 1024 * 1024,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null; stderr?: string };
    const detail = (e.stderr ?? '').trim().slice(0, 200);
    if (e.status === EXIT_TIMEOUT || e.code === 'ETIMEDOUT') {
      return taskError(504, 'UPSTREAM_TIMEOUT', `the upstream did not answer within ${arg.timeoutMs} ms`);
    }
    if (e.status === EXIT_UNREACHABLE) return taskError(502, 'UPSTREAM_UNREACHABLE', `the upstream could not be reached (${detail || 'connection failed'})`);
    if (e.status === EXIT_BAD_STATUS) return taskError(502, 'UPSTREAM_BAD_RESPONSE', `the upstream answered ${detail || 'an error'}`);
    return taskError(502, 'UPSTREAM_CALL_FAILED', 'the blocking upstream call failed');
  }
  const upstreamMs = Math.round(performance.now() - started);
  try {
    return { body: JSON.parse(stdout) as BlockingCallOk['body'], upstreamMs };
  } catch {
    return taskError(502, 'UPSTREAM_BAD_RESPONSE', 'the upstream answered something that is not JSON');
  }
}
