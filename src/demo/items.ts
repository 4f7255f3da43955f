/**
 * S2 of the demo app: `/items` CRUD on a database, as in the field report "CRUD service on
 * PostgreSQL, 75 % reads / 20 % writes / 5 % deletes, 500 users: 1 worker 1.6 s mean, 16 workers
 * 90 ms". Embedded SQLite (one file shared by all workers) by default, PostgreSQL when
 * DATABASE_URL is set; see `db/store.ts` for the settings.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { readRawBody } from '../toolkit/body';
import { HttpError, sendError } from '../toolkit/http-error';
import { parseJsonBody } from '../toolkit/json-parse';
import { StoreUnavailableError, openStore, storeConfigFromEnv, type ItemStore, type StoreConfig } from './db/store';
import { parseId, parseLimit, parseNewItem } from './db/validate';

/** Largest request body: an item is a few hundred bytes; 64 KiB leaves room and bounds memory. */
const BODY_LIMIT = 64 * 1024;

let config: StoreConfig | undefined;
let opening: Promise<ItemStore> | undefined;
let closed = false;

/**
 * The worker's store, opened on first use. A failed open is forgotten, so the next request tries
 * again: a database that is down when the worker starts only costs 503s until it is back.
 */
function store(): Promise<ItemStore> {
  if (closed) return Promise.reject(new StoreUnavailableError('the store was closed for shutdown'));
  if (!opening) {
    const attempt = openStore(config ?? storeConfigFromEnv());
    opening = attempt;
    attempt.catch(() => {
      if (opening === attempt) opening = undefined;
    });
  }
  return opening;
}

/**
 * Closes this worker's store (SQLite connection or PostgreSQL pool). Meant for the app's
 * `shutdown` hook, which drover awaits after the worker's last request; requests arriving later
 * get a 503. Safe to call more than once, and while the store is still opening.
 */
export async function closeItemsStore(): Promise<void> {
  closed = true;
  const pending = opening;
  opening = undefined;
  const s = await pending?.catch(() => undefined);
  await s?.close();
}

let lastUnavailableLog = 0;

/** Errors go to stderr: one line per 5 s for an unavailable database (a burst of 503s is one cause). */
function logError(err: unknown): void {
  if (err instanceof StoreUnavailableError) {
    const now = Date.now();
    if (now - lastUnavailableLog < 5000) return;
    lastUnavailableLog = now;
    process.stderr.write(`demo items: database unavailable (answering 503): ${err.reason}\n`);
  } else if (!(err instanceof HttpError)) {
    process.stderr.write(`demo items: unexpected error (answering 500): ${(err as Error)?.stack ?? String(err)}\n`);
  }
}

/** 404 for an id with no item, including ids beyond the largest that can exist. */
function notFound(id: string): HttpError {
  return new HttpError(404, 'NOT_FOUND', `no item with id ${id}`);
}

function methodNotAllowed(allow: string) {
  return (_req: Request, res: Response) =>
    sendError(res, new HttpError(405, 'METHOD_NOT_ALLOWED', `allowed methods: ${allow}`), { allow });
}

/**
 * The S2 routes, reading their configuration from the environment (`DATABASE_URL`,
 * `DEMO_PG_POOL`, `DEMO_SQLITE_PATH`). The configuration is checked here, so a bad value stops
 * the app from loading with a clear message instead of failing every request; the database itself
 * is opened on the first request.
 *
 * - `GET /items?limit=` → 200 `{ items: Item[] }`, newest first, limit 1..100 (default 20)
 * - `GET /items/:id` → 200 `Item`, 404 when absent
 * - `POST /items` JSON `{ name, price, tags? }` → 201 `Item` (with `id`, `created_at`)
 * - `DELETE /items/:id` → 204, 404 when absent
 *
 * Errors are `{ error: { code, message } }`: 400 (validation, naming the field; bad id; bad JSON),
 * 413 (body over 64 KiB), 415 (not JSON), 503 with `Retry-After` (database unavailable).
 * Every answer carries `x-worker-pid`, so load tests can see which worker served it.
 */
export function createItemsRouter(): Router {
  config = storeConfigFromEnv();
  const router = Router();

  router.use('/items', (_req, res, next) => {
    res.setHeader('x-worker-pid', String(process.pid));
    next();
  });

  router.get('/items', async (req, res) => {
    const limit = parseLimit(req.query.limit);
    res.json({ items: await (await store()).list(limit) });
  });

  router.get('/items/:id', async (req, res) => {
    const id = parseId(req.params.id);
    const item = id === undefined ? undefined : await (await store()).get(id);
    if (!item) throw notFound(req.params.id);
    res.json(item);
  });

  router.post('/items', async (req, res) => {
    // Read and validate before touching the database: a bad request never costs a query.
    const input = parseNewItem(parseJsonBody(await readRawBody(req, { limit: BODY_LIMIT })));
    const item = await (await store()).create(input);
    res.status(201).location(`/items/${item.id}`).json(item);
  });

  router.delete('/items/:id', async (req, res) => {
    const id = parseId(req.params.id);
    if (id === undefined || !(await (await store()).remove(id))) throw notFound(req.params.id);
    res.status(204).end();
  });

  router.all('/items', methodNotAllowed('GET, POST'));
  router.all('/items/:id', methodNotAllowed('GET, DELETE'));

  // Scoped to /items: an error from another router mounted before this one is not ours to answer.
  router.use('/items', (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    logError(err);
    sendError(res, err, err instanceof StoreUnavailableError ? { 'retry-after': '1' } : {});
  });

  return router;
}
