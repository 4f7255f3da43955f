/**
 * drover's public API for apps: helpers that keep a worker's event loop free.
 *
 *   import { streamJson, readRawBody, parseJsonBody, parseJsonOffloaded, offloadBody, offload } from 'drover';
 *
 * See docs/toolkit.md for when to use which.
 */
export { streamJson, jsonChunks, type JsonStreamOptions, type StreamResult } from './toolkit/json-stream';
export { readRawBody, type RawBodyOptions } from './toolkit/body';
export { parseJsonBody, jsonDepth, bodyLane, DEFAULT_MAX_DEPTH, DEFAULT_INLINE_MAX_BYTES, type BodyLane } from './toolkit/json-parse';
export { offload, offloadPool, offloadInFlight, transferable, closePools, type PoolOptions } from './toolkit/offload';
export { offloadBody, parseJsonOffloaded, type BodyTaskOptions, type BodyTaskArg } from './toolkit/offload-body';
export { HttpError, sendError } from './toolkit/http-error';
export { taskError, asTaskError, type TaskError } from './toolkit/offload-tasks';
