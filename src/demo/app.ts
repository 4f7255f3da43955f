/**
 * The bundled demo app: what `npm start` serves when no app is given. Each route reproduces one
 * way a Node service behaves under load, so drover's supervision can be seen and tested.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { HttpError, sendError } from '../toolkit/http-error';
import { streamJson } from '../toolkit/json-stream';
import { createIngestRouter } from './ingest';
import { createIoRouter } from './io';
import { closeItemsStore, createItemsRouter } from './items';
import { buildClients, clientsLazy } from './s0';

const MAX_MS = 600_000;
const MAX_CLIENTS = 200_000;

/** A whole-number query parameter within [0, max], or a 400 naming the parameter. */
function intParam(req: Request, res: Response, name: string, fallback: number, max: number): number | undefined {
  const raw = req.query[name] ?? String(fallback);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) > max) {
    sendError(res, new HttpError(400, 'BAD_QUERY', `${name} must be a whole number from 0 to ${max}`));
    return undefined;
  }
  return Number(raw);
}

function modeParam<T extends string>(req: Request, res: Response, modes: readonly T[]): T | undefined {
  const raw = req.query.mode ?? modes[0];
  if (typeof raw !== 'string' || !modes.includes(raw as T)) {
    sendError(res, new HttpError(400, 'BAD_QUERY', `mode must be one of ${modes.join(', ')}`));
    return undefined;
  }
  return raw as T;
}

function msParam(req: Request, res: Response): number | undefined {
  return intParam(req, res, 'ms', 1000, MAX_MS);
}

export function createDemoApp(): express.Express {
  const app = express();

  /** The small request: what probes and latency benchmarks hit. */
  app.get('/ping', (_req, res) => {
    res.json({ ok: true, pid: process.pid, worker: process.env.DROVER_WORKER_SLOT ?? null });
  });

  /** Async wait: the loop stays free, other requests are unaffected. */
  app.get('/slow', (req, res) => {
    const ms = msParam(req, res);
    if (ms === undefined) return;
    const timer = setTimeout(() => res.json({ ok: true, pid: process.pid, waitedMs: ms }), ms);
    res.on('close', () => clearTimeout(timer));
  });

  /** Busy loop: holds the worker's event loop (a stuck worker, as the watchdog sees it). */
  app.get('/block', (req, res) => {
    const ms = msParam(req, res);
    if (ms === undefined) return;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      // spin: nothing else runs on this worker meanwhile
    }
    res.json({ ok: true, pid: process.pid, blockedMs: ms });
  });

  /**
   * S0: 40,000 nested client records (~23 MB). `naive` builds everything and calls res.json(),
   * holding the loop for hundreds of ms; `stream` generates and writes in ~5 ms slices.
   */
  app.get('/clients', (req, res, next) => {
    const count = intParam(req, res, 'count', 40_000, MAX_CLIENTS);
    if (count === undefined) return;
    const mode = modeParam(req, res, ['naive', 'stream'] as const);
    if (mode === undefined) return;
    if (mode === 'naive') return void res.json({ items: buildClients(count) });
    streamJson(res, { items: clientsLazy(count) }).catch(next);
  });

  app.use(createIoRouter());
  app.use(createItemsRouter());
  app.use(createIngestRouter());

  /** Crashes the worker from outside the request's promise chain, as a real bug would. */
  app.get('/crash', (_req, res) => {
    res.status(500).json({ error: 'crashing on purpose', pid: process.pid });
    setImmediate(() => {
      throw new Error('crash requested through GET /crash');
    });
  });

  app.use((_req: Request, res: Response) => sendError(res, new HttpError(404, 'NOT_FOUND', 'no such route')));
  // Errors become JSON with a status and a code; never a stack trace or an internal path.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => sendError(res, toHttpError(err)));
  return app;
}

/** body-parser's errors carry `type` and `status`; anything unknown is a 500 that says nothing. */
function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { type?: string; status?: number };
  if (e.type === 'entity.too.large') return new HttpError(413, 'BODY_TOO_LARGE', 'request body too large');
  if (e.type === 'entity.parse.failed') return new HttpError(400, 'MALFORMED_JSON', 'malformed JSON');
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return new HttpError(415, 'UNSUPPORTED_ENCODING', 'unsupported body encoding');
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return new HttpError(e.status, 'BAD_REQUEST', 'bad request');
  process.stderr.write(`demo app error: ${(err as Error)?.stack ?? String(err)}\n`);
  return new HttpError(500, 'INTERNAL', 'internal error');
}

export default createDemoApp;

/** Awaited by drover during drain, after the worker's last request: closes the SQLite file / PostgreSQL pool. */
export async function shutdown(): Promise<void> {
  await closeItemsStore();
}
