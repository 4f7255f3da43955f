/**
 * Scenario S1 of the demo app: a handler that waits on IO, done three ways.
 *
 *   GET /upstream?mode=async|blocking|offload&waitms=1000   calls ${UPSTREAM_URL}/wait?ms=waitms
 *   GET /report?mode=async|sync&name=orders-2024             reads demo-data/reports/<name>.json
 *
 * `blocking` is the field report's failing case (sync IO in an async handler: the worker's loop
 * is held for the whole call); `async` keeps the loop free; `offload` runs the same blocking code
 * on a thread pool. Configuration comes from the environment, read once per worker:
 *
 * | variable              | default                          | meaning                                |
 * |-----------------------|----------------------------------|----------------------------------------|
 * | `UPSTREAM_URL`        | unset (then /upstream is a 503)  | base URL of the slow upstream          |
 * | `UPSTREAM_TIMEOUT_MS` | 5000                             | deadline of one upstream call, any mode |
 * | `IO_OFFLOAD_THREADS`  | 16                               | threads of the blocking-IO pool        |
 * | `DEMO_DATA_DIR`       | `<repo>/demo-data/reports`       | folder /report reads from              |
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Router, type Request, type Response } from 'express';
import { HttpError, sendError } from '../toolkit/http-error';
import { offload, offloadPool } from '../toolkit/offload';
import { blockingUpstreamCall, type BlockingCallArg, type BlockingCallOk } from './io-tasks';

const UPSTREAM_MODES = ['async', 'blocking', 'offload'] as const;
const REPORT_MODES = ['async', 'sync'] as const;
const MAX_WAIT_MS = 60_000;
const DEFAULT_REPORT = 'orders-2024';
/** Report names are plain slugs; the server appends `.json`. Anything else never reaches fs. */
const REPORT_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const IO_TASKS = path.join(__dirname, 'io-tasks.js');
/** dist/src/demo → repository root. */
const DEFAULT_DATA_DIR = path.join(__dirname, '..', '..', '..', 'demo-data', 'reports');

interface IoConfig {
  upstreamUrl: string | undefined;
  timeoutMs: number;
  offloadThreads: number;
  dataDir: string;
}

function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}, not "${raw}".`);
  }
  return Number(raw);
}

/** Reads and validates the environment once, so a typo fails the worker's start, not a request. */
function readConfig(): IoConfig {
  const raw = process.env.UPSTREAM_URL || undefined;
  if (raw !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new Error(`UPSTREAM_URL must be an http(s) URL such as http://127.0.0.1:3100, not "${raw}".`);
    }
  }
  return {
    upstreamUrl: raw?.replace(/\/+$/, ''),
    timeoutMs: envInt('UPSTREAM_TIMEOUT_MS', 5_000, 1, 600_000),
    // Sized for waiting, not computing: a busy thread sleeps in Atomics.wait while its helper
    // thread waits on the socket (./sync-http), so threads beyond the cores cost memory, not CPU.
    // drover's default pool (cores / 2 threads) would serialize blocking calls.
    offloadThreads: envInt('IO_OFFLOAD_THREADS', 16, 1, 256),
    dataDir: path.resolve(process.env.DEMO_DATA_DIR || DEFAULT_DATA_DIR),
  };
}

/** A query parameter given at most once (a repeated key arrives as an array). */
function queryOnce(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined || typeof v === 'string') return v;
  throw new HttpError(400, `BAD_${name.toUpperCase()}`, `${name} must be given once`);
}

function modeParam<T extends string>(req: Request, modes: readonly T[]): T {
  const raw = queryOnce(req, 'mode') ?? modes[0]!;
  if (!modes.includes(raw as T)) throw new HttpError(400, 'BAD_MODE', `mode must be one of ${modes.join(', ')}`);
  return raw as T;
}

function waitParam(req: Request): number {
  const raw = queryOnce(req, 'waitms') ?? '1000';
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > MAX_WAIT_MS) {
    throw new HttpError(400, 'BAD_WAITMS', `waitms must be a whole number from 0 to ${MAX_WAIT_MS}`);
  }
  return Number(raw);
}

/**
 * Errors answered here, as JSON, so these routes do not depend on whatever error handler the
 * app mounting them has (Express's default one answers HTML with a stack in development).
 */
function route(fn: (req: Request, res: Response) => Promise<void>) {
  return async (req: Request, res: Response): Promise<void> => {
    try {
      await fn(req, res);
    } catch (err) {
      if (!(err instanceof HttpError)) {
        process.stderr.write(`${JSON.stringify({ msg: 'io route failed', path: req.path, err: String((err as Error)?.stack ?? err) })}\n`);
      }
      sendError(res, err);
    }
  };
}

/** Aborts when the client goes away before its answer, so the upstream call can stop too. */
function clientGone(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** Non-blocking call: fetch with a deadline; the loop serves other requests meanwhile. */
async function callAsync(url: string, timeoutMs: number, gone: AbortSignal): Promise<BlockingCallOk> {
  const started = performance.now();
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { signal: AbortSignal.any([deadline, gone]) });
    const text = await res.text();
    if (res.status !== 200) throw new HttpError(502, 'UPSTREAM_BAD_RESPONSE', `the upstream answered status ${res.status}`);
    let body: BlockingCallOk['body'];
    try {
      body = JSON.parse(text) as BlockingCallOk['body'];
    } catch {
      throw new HttpError(502, 'UPSTREAM_BAD_RESPONSE', 'the upstream answered something that is not JSON');
    }
    return { body, upstreamMs: Math.round(performance.now() - started) };
  } catch (err) {
    if (err instanceof HttpError) throw err;
    if (deadline.aborted) throw new HttpError(504, 'UPSTREAM_TIMEOUT', `the upstream did not answer within ${timeoutMs} ms`);
    // Nobody is left to read it; the status only shows in logs and metrics.
    if (gone.aborted) throw new HttpError(499, 'CLIENT_CLOSED', 'the client closed the connection');
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new HttpError(502, 'UPSTREAM_UNREACHABLE', `the upstream could not be reached (${cause?.code ?? 'connection failed'})`);
  }
}

function unwrap(r: ReturnType<typeof blockingUpstreamCall>): BlockingCallOk {
  if ('droverTaskError' in r) throw new HttpError(r.droverTaskError.status, r.droverTaskError.code, r.droverTaskError.message);
  return r;
}

/** Summary of a report file: what /report answers (the file itself may be megabytes). */
export interface ReportSummary {
  name: string;
  bytes: number;
  records: number;
  /** Sum of the records' `amount`, in the report's currency, to the cent. */
  total: number;
  currency: string | null;
  firstDate: string | null;
  lastDate: string | null;
}

function summarize(name: string, bytes: Buffer): ReportSummary {
  let data: { currency?: unknown; records?: unknown };
  try {
    data = JSON.parse(bytes.toString('utf8')) as typeof data;
  } catch {
    throw new HttpError(500, 'REPORT_INVALID', `report ${name} is not valid JSON`);
  }
  if (!data || typeof data !== 'object' || !Array.isArray(data.records)) {
    throw new HttpError(500, 'REPORT_INVALID', `report ${name} has no records array`);
  }
  let cents = 0;
  const dates: string[] = [];
  for (const r of data.records as { amount?: unknown; date?: unknown }[]) {
    // Whole cents: summing thousands of 2-decimal floats would drift in the last digit.
    if (typeof r?.amount === 'number') cents += Math.round(r.amount * 100);
    if (typeof r?.date === 'string') dates.push(r.date);
  }
  dates.sort();
  return {
    name,
    bytes: bytes.length,
    records: data.records.length,
    total: cents / 100,
    currency: typeof data.currency === 'string' ? data.currency : null,
    firstDate: dates[0] ?? null,
    lastDate: dates[dates.length - 1] ?? null,
  };
}

/**
 * The file for a report name, or a 400. The pattern is the real guard; the containment check
 * is the second line of defence should the pattern ever be loosened.
 */
function reportFile(dir: string, name: string): string {
  if (!REPORT_NAME.test(name)) {
    throw new HttpError(400, 'BAD_NAME', 'name must be 1-64 lowercase letters, digits or dashes (no extension)');
  }
  const file = path.resolve(dir, `${name}.json`);
  if (path.dirname(file) !== dir) throw new HttpError(400, 'BAD_NAME', 'name must stay inside the report folder');
  return file;
}

/**
 * A symlink inside the folder could still point outside it: resolve both and compare, and read
 * the resolved path. A missing file, or one that resolves outside, is a 404 (revealing nothing).
 */
function contained(dirReal: string, fileReal: string, name: string): string {
  if (!fileReal.startsWith(dirReal + path.sep)) throw notFound(name);
  return fileReal;
}

function notFound(name: string): HttpError {
  return new HttpError(404, 'REPORT_NOT_FOUND', `no report named ${name}`);
}

function fsError(err: unknown, name: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' ? notFound(name) : err;
}

/** `sync`: the loop is held for the read and parse (the habit S1 warns about). */
function readReportSync(dir: string, name: string): ReportSummary {
  const file = reportFile(dir, name);
  try {
    const real = contained(fs.realpathSync(dir), fs.realpathSync(file), name);
    return summarize(name, fs.readFileSync(real));
  } catch (err) {
    throw fsError(err, name);
  }
}

/** `async`: the read happens on libuv's pool; the parse is the same (and still on the loop). */
async function readReportAsync(dir: string, name: string): Promise<ReportSummary> {
  const file = reportFile(dir, name);
  try {
    const real = contained(await fs.promises.realpath(dir), await fs.promises.realpath(file), name);
    return summarize(name, await fs.promises.readFile(real));
  } catch (err) {
    throw fsError(err, name);
  }
}

/** The S1 routes (`/upstream`, `/report`), configured from the environment (see the file header). */
export function createIoRouter(): Router {
  const config = readConfig();
  const router = Router();
  let poolReady = false;

  router.get(
    '/upstream',
    route(async (req, res) => {
      const mode = modeParam(req, UPSTREAM_MODES);
      const waitMs = waitParam(req);
      if (!config.upstreamUrl) {
        throw new HttpError(
          503,
          'UPSTREAM_NOT_CONFIGURED',
          'UPSTREAM_URL is not set: start the bundled upstream with `node dist/src/demo/slow-upstream.js --port 3100` ' +
            'and run drover with UPSTREAM_URL=http://127.0.0.1:3100',
        );
      }
      const arg: BlockingCallArg = { url: `${config.upstreamUrl}/wait?ms=${waitMs}`, timeoutMs: config.timeoutMs };
      let result: BlockingCallOk;
      if (mode === 'async') {
        result = await callAsync(arg.url, arg.timeoutMs, clientGone(res));
      } else if (mode === 'blocking') {
        result = unwrap(blockingUpstreamCall(arg));
      } else {
        // offload() creates a pool with drover's CPU-sized defaults on first use; create ours
        // first, sized for blocking IO (the pool is cached per task file).
        if (!poolReady) offloadPool(IO_TASKS, { maxThreads: config.offloadThreads });
        poolReady = true;
        result = await offload<BlockingCallOk>('blockingUpstreamCall', arg, { filename: IO_TASKS });
      }
      res.json({ ok: true, mode, waitedMs: result.body.waitedMs ?? null, upstreamMs: result.upstreamMs, pid: process.pid });
    }),
  );

  router.get(
    '/report',
    route(async (req, res) => {
      const mode = modeParam(req, REPORT_MODES);
      const name = queryOnce(req, 'name') ?? DEFAULT_REPORT;
      const summary = mode === 'sync' ? readReportSync(config.dataDir, name) : await readReportAsync(config.dataDir, name);
      res.json({ ok: true, mode, ...summary });
    }),
  );

  return router;
}
