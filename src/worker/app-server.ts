import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { WorkerConfig } from '../protocol';
import { Connections } from './connections';
import type { BlockWatch } from './block-watch';
import type { PressureGate } from './pressure-gate';

/** More headers than any real client sends; beyond it a request is a 431. */
const MAX_HEADERS = 500;

/** The status line for a request node's parser or timers refused. */
function clientErrorStatus(code: string | undefined): string {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return '431 Request Header Fields Too Large';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return '408 Request Timeout';
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return '413 Payload Too Large';
    default:
      return '400 Bad Request';
  }
}

export type ServerLimits = Pick<WorkerConfig, 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxRequestsPerSocket'>;

/**
 * The HTTP server a worker serves its app with, and the request path every request takes:
 * connection tracking, the header-count limit, the pressure gate, then the app. The worker
 * feeds it sockets from the primary; the bench's cost suite listens with it directly, so the
 * path it measures is this one.
 */
export function createAppServer(
  limits: ServerLimits,
  app: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  gate: PressureGate | undefined,
  blocks?: BlockWatch,
): { server: http.Server; conns: Connections } {
  // Timeouts are checked every second (node's default is every 30 s, which lets a slowloris
  // connection live up to 30 s past --headers-timeout).
  const server = http.createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: 1000,
  });
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.maxHeadersCount = MAX_HEADERS;
  const conns = new Connections(server);
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    conns.track(res);
    // node silently drops headers past maxHeadersCount; a request that reached it is refused.
    if (req.rawHeaders.length >= MAX_HEADERS * 2) return void res.writeHead(431, { connection: 'close', 'content-length': 0 }).end();
    if (gate?.shed(req, res)) return;
    // With block detection, the app's synchronous code runs marked as this request's.
    if (blocks) blocks.run(req, res, app);
    else app(req, res);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Malformed or too-slow requests get a bare status and never reach the app. As node's own
    // handler: answer only if the socket is writable and no response has started on it.
    const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (!socket.writable || started) return socket.destroy();
    socket.end(`HTTP/1.1 ${clientErrorStatus(err.code)}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  return { server, conns };
}
