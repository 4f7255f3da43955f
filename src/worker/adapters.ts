/**
 * Every kind of app becomes one Node request listener, which drover's own request path
 * (app-server.ts: connection tracking, the pressure gate, drain's `Connection: close`, RED
 * metrics) calls exactly as it calls an Express app. Which kind a module is: app-kind.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { DroverError, ExitCode } from '../errors';
import { ACCEPTED, describeValue, kindOf, moduleKind, type AppKind, type FetchHandler, type Listener } from './app-kind';

export interface ServedApp {
  kind: Exclude<AppKind['kind'], 'factory' | 'unservable'>;
  /** What app-server calls per request; an Express app is passed through (it has `set`). */
  listener: Listener & { set?: (name: string, value: unknown) => unknown };
  /** The framework object itself, whose methods (Fastify's `ready`) are not the module's hooks. */
  framework: object | undefined;
  /** Closes what drover started (Fastify's onClose hooks) when the module has no shutdown hook. */
  close: (() => unknown) | undefined;
}

function refuse(message: string): never {
  throw new DroverError('DROVER_ERR_APP_LOAD', message, ExitCode.APP_LOAD_ERROR);
}

/** The module's app as a listener, calling its factory and booting Fastify first. */
export async function serveModule(file: string, mod: Record<string, unknown>): Promise<ServedApp> {
  const { kind, what, value } = moduleKind(mod);
  if (kind.kind !== 'factory') return adapt(kind, () => `${file}: ${what} is ${describeValue(value)}.`);
  let made: unknown;
  try {
    made = await kind.factory();
  } catch (err) {
    // A one-parameter function may be a fetch handler read as a factory: the hint goes into the
    // message, the one line the primary logs when it stops (the stack stays the app's own).
    if (kind.factory.length !== 1 || !(err instanceof Error)) throw err;
    err.message += ` (drover called ${what}, ${describeValue(value)}, as a factory with no arguments; if it is a fetch handler, export it as \`fetch\`)`;
    throw err;
  }
  const result = kindOf(made);
  if (result.kind === 'factory') {
    // One level only: a function that a factory returns is served only if it says it is a listener.
    refuse(`${file}: ${what} is a factory (${describeValue(value)}) and returned ${describeValue(made)}, another function that is not a request listener (req, res). ${ACCEPTED}.`);
  }
  return adapt(result, () => `${file}: ${what} is a factory (${describeValue(value)}) and returned ${describeValue(made)}.`);
}

async function adapt(kind: Exclude<AppKind, { kind: 'factory' }>, got: () => string): Promise<ServedApp> {
  switch (kind.kind) {
    case 'express':
      return { kind: 'express', listener: kind.app, framework: undefined, close: undefined };
    case 'listener':
      return { kind: 'listener', listener: kind.listener, framework: undefined, close: undefined };
    case 'fetch':
      return { kind: 'fetch', listener: fetchListener(kind.fetch), framework: undefined, close: undefined };
    case 'fastify': {
      const app = kind.app;
      // Plugins and routes load in ready(); routing() then serves requests without a listen().
      await app.ready();
      return { kind: 'fastify', listener: (req, res) => app.routing(req, res), framework: app, close: () => app.close() };
    }
    case 'unservable':
      return refuse(`${got()} ${ACCEPTED}.${kind.hint ? ` ${kind.hint}` : ''}`);
  }
}

/**
 * A fetch handler as a request listener: the request streams in as a Request (its signal aborts
 * when the client goes away), the Response streams out with backpressure. A handler that throws
 * or returns no Response gets a 500, logged as Express's final handler logs its errors.
 */
export function fetchListener(handler: FetchHandler): Listener {
  return (req, res) => void serveFetch(handler, req, res);
}

async function serveFetch(handler: FetchHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const aborted = new AbortController();
  const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : bodyOf(req);
  res.once('close', () => {
    if (!res.writableFinished) aborted.abort();
    body?.release();
  });
  let request: Request;
  try {
    request = toRequest(req, body?.stream, aborted.signal);
  } catch {
    // An unparseable Host header or request-target: nothing an app could route.
    return void res.writeHead(400, { connection: 'close', 'content-length': 0 }).end();
  }
  try {
    const response = await handler(request, { incoming: req, outgoing: res });
    if (isResponse(response)) return await writeResponse(response, res, aborted.signal);
    if (res.headersSent) return; // the handler answered through `outgoing` itself
    throw new TypeError(`the fetch handler returned ${describeValue(response)}, not a Response`);
  } catch (err) {
    if (aborted.signal.aborted) return; // the client left; the handler's abort error is expected
    // A throwing handler, or headers Node refuses; after the head is out, only a reset says so.
    console.error(err);
    if (res.headersSent) return void res.destroy();
    res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error');
  }
}

function toRequest(req: IncomingMessage, body: ReadableStream<Uint8Array> | undefined, signal: AbortSignal): Request {
  const host = req.headers.host ?? 'localhost';
  // Concatenated, not resolved against a base: a target of "//other/x" stays a path on this host.
  const url = req.url?.startsWith('/') ? `http://${host}${req.url}` : (req.url ?? '/');
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  return new Request(url, { method: req.method, headers, body: body as RequestInit['body'], signal, duplex: 'half' } as RequestInit);
}

/**
 * The request body as a web stream that reads only as the handler reads (highWaterMark 0).
 * Readable.toWeb reads ahead from the start, so a body the handler ignores stays half read and
 * the keep-alive connection stalls before its next request. A body never touched is discarded by
 * Node after the response; `release()` does the same for one read in part (or cancelled).
 */
function bodyOf(req: IncomingMessage): { stream: ReadableStream<Uint8Array>; release: () => void } {
  let state: 'idle' | 'reading' | 'done' = 'idle';
  let onData: ((chunk: Buffer) => void) | undefined;
  const release = () => {
    const reading = state === 'reading';
    state = 'done';
    if (!reading) return;
    req.off('data', onData!);
    req.resume(); // flowing with no listener: the rest is read off the socket and dropped
  };
  const start = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    state = 'reading';
    onData = (chunk) => {
      controller.enqueue(chunk);
      if ((controller.desiredSize ?? 0) <= 0) req.pause();
    };
    req.on('data', onData);
    req.once('end', () => {
      if (state !== 'reading') return;
      state = 'done';
      controller.close();
    });
    req.once('error', (err) => {
      if (state !== 'reading') return;
      state = 'done';
      controller.error(err);
    });
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (state === 'idle') start(controller);
        if (state === 'reading') req.resume();
      },
      cancel: release,
    },
    { highWaterMark: 0 },
  );
  return { stream, release };
}

function isResponse(x: unknown): x is Response {
  // Duck-typed: @hono/node-server swaps in its own Response class when an app imports it.
  const r = x as Partial<Response> | null | undefined;
  return typeof r?.status === 'number' && typeof r.headers?.getSetCookie === 'function' && 'body' in r;
}

async function writeResponse(response: Response, res: ServerResponse, aborted: AbortSignal): Promise<void> {
  res.statusCode = response.status;
  if (response.statusText) res.statusMessage = response.statusText;
  // Iterating Headers joins Set-Cookie values with ", ", which breaks Expires dates: set them apart.
  for (const [name, value] of response.headers) if (name !== 'set-cookie') res.setHeader(name, value);
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  if (!response.body) return void res.end();
  try {
    await pipeline(Readable.fromWeb(response.body as unknown as NodeReadableStream), res);
  } catch (err) {
    // pipeline destroyed both ends; only a body that failed on its own is the app's error.
    if (!aborted.aborted) console.error(err);
  }
}
