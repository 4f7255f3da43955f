/**
 * A synchronous HTTP GET that sleeps while it waits, like a blocking HTTP client (Python's
 * `requests`, a synchronous SDK): the calling thread is held for the whole call but spends no
 * CPU on it. Node has no synchronous HTTP, so the request is made by a helper worker thread
 * while the caller sleeps in `Atomics.wait` (the technique of the `synckit` package; why not
 * synckit itself: docs/adr/0014-synchronous-upstream-call.md).
 *
 *   caller thread                          helper thread (this file, started once per caller)
 *   ─────────────                          ─────────────
 *   postMessage({ id, url, deadline })  →  node:http GET, destroyed at the deadline
 *   Atomics.wait(signal, seen, …)          …
 *                                       ←  answers.postMessage({ id, result }); signal += 1; notify
 *   receiveMessageOnPort(answers)
 *
 * Results are plain objects (never thrown): they cross a thread boundary, and callers on a
 * piscina thread pass them on across another one.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { MessageChannel, MessagePort, Worker, isMainThread, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';

/** What one call gives back: the response, or why there is none. */
export type SyncHttpResult =
  | { kind: 'response'; status: number; body: string }
  /** The deadline passed before the whole response arrived (the socket is destroyed). */
  | { kind: 'timeout' }
  /** The request failed: `code` is the socket error (ECONNREFUSED…) or one of this file's. */
  | { kind: 'error'; code: string };

/** Largest body kept; a bigger one is an error (`TOO_LARGE`), not a memory problem. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * How long past the deadline the caller waits for the helper before giving up on it. The helper
 * enforces the deadline itself; this only bounds a helper that died or stalled.
 */
const HELPER_SLACK_MS = 1_000;

interface Ask {
  id: number;
  url: string;
  /** Absolute, epoch ms: the helper's start-up on a first call counts against it. */
  deadline: number;
}
interface Answer {
  id: number;
  result: SyncHttpResult;
}
/** Marks this file's helper threads (the file is both the caller side and the helper's entry). */
interface HelperData {
  droverSyncHttp: { answers: MessagePort; signal: Int32Array };
}

// ─── helper thread ────────────────────────────────────────────────────────────

function get(ask: Ask, done: (r: SyncHttpResult) => void): void {
  let settled = false;
  const finish = (r: SyncHttpResult) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    done(r);
  };
  let url: URL;
  try {
    url = new URL(ask.url);
  } catch {
    return done({ kind: 'error', code: 'BAD_URL' });
  }
  // A new connection per call (agent: false), as the blocking call it stands for would open:
  // no idle socket is left for the upstream to close under a later call.
  const req = (url.protocol === 'https:' ? https : http).get(url, { agent: false }, (res) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    res.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > MAX_BODY_BYTES) {
        finish({ kind: 'error', code: 'TOO_LARGE' });
        req.destroy();
      } else chunks.push(c);
    });
    res.on('end', () => finish({ kind: 'response', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    res.on('error', (e: NodeJS.ErrnoException) => finish({ kind: 'error', code: e.code ?? 'RESPONSE_ERROR' }));
  });
  req.on('error', (e: NodeJS.ErrnoException) => finish({ kind: 'error', code: e.code ?? 'REQUEST_ERROR' }));
  // The deadline holds whatever the upstream does: connect, headers or a body that trickles.
  const timer = setTimeout(() => {
    finish({ kind: 'timeout' });
    req.destroy();
  }, Math.max(0, ask.deadline - Date.now()));
}

function serve(data: HelperData['droverSyncHttp']): void {
  parentPort!.on('message', (ask: Ask) => {
    get(ask, (result) => {
      // Post first, then bump the counter: a caller that sees the new count finds the message.
      data.answers.postMessage({ id: ask.id, result } satisfies Answer);
      Atomics.add(data.signal, 0, 1);
      Atomics.notify(data.signal, 0);
    });
  });
}

if (!isMainThread && (workerData as Partial<HelperData> | null)?.droverSyncHttp) {
  serve((workerData as HelperData).droverSyncHttp);
}

// ─── caller side ──────────────────────────────────────────────────────────────

interface Helper {
  worker: Worker;
  answers: MessagePort;
  signal: Int32Array;
  nextId: number;
}

/** This thread's helper. Module state is per thread, so each pool thread gets its own. */
let helper: Helper | undefined;
/** Helpers started by this thread, for tests and diagnostics (1 unless one died). */
let started = 0;

function helperThread(): Helper {
  if (helper) return helper;
  const { port1, port2 } = new MessageChannel();
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(__filename, {
    workerData: { droverSyncHttp: { answers: port2, signal } } satisfies HelperData,
    transferList: [port2],
  });
  // An idle helper must not keep a draining process alive; piscina's destroy() ends the pool
  // threads, and a thread's nested workers end with it.
  worker.unref();
  const h: Helper = { worker, answers: port1, signal, nextId: 1 };
  // Runs on this thread's loop between calls: the next call starts a fresh helper.
  const forget = () => {
    if (helper === h) helper = undefined;
  };
  // Listening also keeps a helper's crash from becoming this process's uncaught exception.
  worker.on('error', forget);
  worker.on('exit', forget);
  started++;
  helper = h;
  return h;
}

/**
 * GET `url`, holding the calling thread until the response, an error, or `timeoutMs`. Costs a
 * helper thread start (~30–50 ms of CPU) on this thread's first call, then almost nothing.
 */
export function httpGetSync(url: string, timeoutMs: number): SyncHttpResult {
  const h = helperThread();
  const id = h.nextId++;
  const deadline = Date.now() + timeoutMs;
  h.worker.postMessage({ id, url, deadline } satisfies Ask);
  const giveUp = deadline + HELPER_SLACK_MS;
  for (;;) {
    // Read the counter before the port: an answer posted after the read below changes the
    // counter, so the wait returns at once instead of sleeping past it.
    const seen = Atomics.load(h.signal, 0);
    const m = receiveMessageOnPort(h.answers) as { message: Answer } | undefined;
    if (m?.message.id === id) return m.message.result;
    if (m) continue; // a late answer to a call this thread already gave up on
    const left = giveUp - Date.now();
    if (left <= 0) {
      // The helper is dead or stuck: drop it (terminate() finishes on this thread's loop).
      void h.worker.terminate();
      if (helper === h) helper = undefined;
      return { kind: 'error', code: 'HELPER_NO_ANSWER' };
    }
    Atomics.wait(h.signal, 0, seen, left);
  }
}

/** How many helper threads this thread has started (tests: one, however many calls). */
export function helperThreadsStarted(): number {
  return started;
}
