/** Thread-pool task of the S3 demo: parse (with drover's strict checks) and build the records off the loop. */
import { performance } from 'node:perf_hooks';
import { parseJsonBody } from '../toolkit/json-parse';
import { asTaskError, type TaskError } from '../toolkit/offload-tasks';
import { buildRecords, summarize, type IngestSummary } from './s3';

export function ingest(arg: { buffer: ArrayBuffer }): { summary: IngestSummary; parseMs: number; validateMs: number } | TaskError {
  try {
    const t0 = performance.now();
    const body = parseJsonBody(new Uint8Array(arg.buffer));
    const t1 = performance.now();
    const summary = summarize(buildRecords(body));
    return { summary, parseMs: t1 - t0, validateMs: performance.now() - t1 };
  } catch (err) {
    return asTaskError(err);
  }
}
