/**
 * The S3 demo's body task: parse (with drover's strict checks), validate and build the records.
 * `offloadBody` runs it on the event loop for a small body and on the thread pool for a big one.
 */
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';
import type { BodyLane } from '../toolkit/json-parse';
import { parseJsonBody } from '../toolkit/json-parse';
import { asTaskError, type TaskError } from '../toolkit/offload-tasks';
import { buildRecords, summarize, type IngestSummary } from './s3';

/** What the task did, and where: the lane is read off the thread it ran on, not predicted. */
export interface IngestResult {
  summary: IngestSummary;
  parseMs: number;
  validateMs: number;
  lane: BodyLane;
}

export function ingest(arg: { buffer: ArrayBuffer }): IngestResult | TaskError {
  try {
    const t0 = performance.now();
    const body = parseJsonBody(new Uint8Array(arg.buffer));
    const t1 = performance.now();
    const summary = summarize(buildRecords(body));
    return { summary, parseMs: t1 - t0, validateMs: performance.now() - t1, lane: isMainThread ? 'inline' : 'pool' };
  } catch (err) {
    return asTaskError(err);
  }
}
