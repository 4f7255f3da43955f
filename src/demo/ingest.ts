import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import express, { Router, type Request, type Response, type NextFunction } from 'express';
import * as promClient from 'prom-client';
import { readRawBody } from '../toolkit/body';
import { HttpError, sendError } from '../toolkit/http-error';
import type { BodyLane } from '../toolkit/json-parse';
import { offloadInFlight } from '../toolkit/offload';
import { offloadBody } from '../toolkit/offload-body';
import type { IngestResult } from './ingest-tasks';
import { buildRecords, summarize, type IngestSummary } from './s3';

/** Bodies up to 32 MiB (the scenario's are ~25 MB). */
export const INGEST_LIMIT = 32 * 2 ** 20;
const TASKS = path.join(__dirname, 'ingest-tasks.js');

const phases = new promClient.Histogram({
  name: 'demo_ingest_phase_seconds',
  help: 'Time per phase of POST /ingest (read the body, parse JSON, validate and build records), by mode.',
  labelNames: ['mode', 'phase'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
});

type Phases = { readMs: number; parseMs: number; validateMs: number };
/** offload mode only: where the body was parsed, and the ingest tasks on the pool as it answered. */
type Lanes = { lane: BodyLane; poolInFlight: number };

function respond(res: Response, mode: string, summary: IngestSummary, t: Phases, lanes?: Lanes) {
  phases.observe({ mode, phase: 'read' }, t.readMs / 1000);
  phases.observe({ mode, phase: 'parse' }, t.parseMs / 1000);
  phases.observe({ mode, phase: 'validate' }, t.validateMs / 1000);
  res.json({ ok: true, mode, ...lanes, ...summary, phasesMs: { read: Math.round(t.readMs), parse: Math.round(t.parseMs), validate: Math.round(t.validateMs) } });
}

/**
 * S3 `POST /ingest?mode=naive|offload`. naive: express.json() and validation on the event loop,
 * what people write first. offload: the body is read as raw bytes with the limit enforced while
 * streaming, then parsed and validated by one task (ingest-tasks.ts) through `offloadBody`: inline
 * for a small body, so it never queues behind a big one, on the thread pool for a big body (bytes
 * transferred, not copied).
 */
export function createIngestRouter(): Router {
  const router = Router();
  const naiveJson = express.json({ limit: INGEST_LIMIT });
  router.post('/ingest', (req: Request, res: Response, next: NextFunction) => {
    const mode = req.query.mode ?? 'naive';
    const started = performance.now();
    if (mode === 'naive') {
      let parsedAt = 0;
      return naiveJson(req, res, (err?: unknown) => {
        if (err) return next(err);
        // body-parser reads and parses in one step: read + parse are reported together as parse.
        parsedAt = performance.now();
        if (!req.is('application/json')) return next(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json'));
        try {
          const summary = summarize(buildRecords(req.body));
          respond(res, 'naive', summary, { readMs: 0, parseMs: parsedAt - started, validateMs: performance.now() - parsedAt });
        } catch (e) {
          next(e);
        }
      });
    }
    if (mode !== 'offload') return sendError(res, new HttpError(400, 'BAD_QUERY', 'mode must be naive or offload'));
    readRawBody(req, { limit: INGEST_LIMIT })
      .then(async (bytes) => {
        const readMs = performance.now() - started;
        const r = await offloadBody<IngestResult>('ingest', bytes, {}, { filename: TASKS });
        respond(res, 'offload', r.summary, { readMs, parseMs: r.parseMs, validateMs: r.validateMs }, { lane: r.lane, poolInFlight: offloadInFlight(TASKS) });
      })
      .catch(next);
  });
  return router;
}
