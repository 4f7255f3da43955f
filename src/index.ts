/**
 * drover's public API for apps: helpers that keep a worker's event loop free.
 *
 *   import { streamJson, readRawBody, parseJsonBody, parseJsonOffloaded, offload } from 'drover';
 *
 * See docs/toolkit.md for when to use which.
 */
export { streamJson, jsonChunks, type JsonStreamOptions, type StreamResult } from './toolkit/json-stream';
export { readRawBody, type RawBodyOptions } from './toolkit/body';
export { parseJsonBody, jsonDepth, DEFAULT_MAX_DEPTH } from './toolkit/json-parse';
export { offload, offloadPool, parseJsonOffloaded, transferable, closePools, type PoolOptions } from './toolkit/offload';
export { HttpError, sendError } from './toolkit/http-error';
export { taskError, asTaskError, type TaskError } from './toolkit/offload-tasks';
