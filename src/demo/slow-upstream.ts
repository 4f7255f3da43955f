/**
 * A slow upstream for scenario S1: `GET /wait?ms=N` answers after N ms, like a dependency that
 * takes a second to reply. Runs as its own process so that what it measures is the caller's
 * event loop, never its own:
 *
 *   node dist/src/demo/slow-upstream.js [--port 3100] [--host 127.0.0.1]
 *
 * Prints `{"msg":"upstream listening","port":P}` once it listens (port 0 picks a free port).
 * Plain node:http, no Express: every wait is one timer, so thousands of pending waits cost
 * little more than their sockets.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, sendError } from '../toolkit/http-error';

/** Longest wait a request may ask for: a test double should never hold a socket for hours. */
export const MAX_WAIT_MS = 60_000;

/** Counters a test can poll to see that a call reached the upstream (observable, no sleeps). */
export interface UpstreamStats {
  /** Waits received since start. */
  started: number;
  /** Waits started and not yet answered or abandoned. */
  pending: number;
  /** Highest `pending` seen since start. */
  maxPending: number;
  /** Waits answered with 200. */
  served: number;
  /** Waits whose caller went away before the answer. */
  abandoned: number;
}

/** A running upstream: its port, live counters and a close function. */
export interface SlowUpstream {
  server: http.Server;
  port: number;
  stats: UpstreamStats;
  /** Stops listening and drops every connection, pending waits included. */
  close(): Promise<void>;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, stats: UpstreamStats): void {
  const url = new URL(req.url ?? '/', 'http://upstream.invalid');
  if (req.method !== 'GET') return sendError(res, new HttpError(405, 'METHOD_NOT_ALLOWED', 'only GET is served'));
  if (url.pathname === '/health') return sendJson(res, 200, { ok: true, pid: process.pid });
  if (url.pathname === '/stats') return sendJson(res, 200, stats);
  if (url.pathname !== '/wait') return sendError(res, new HttpError(404, 'NOT_FOUND', 'routes: GET /wait?ms=N, /health, /stats'));

  const raw = url.searchParams.getAll('ms');
  const text = raw.length === 0 ? '1000' : raw.length === 1 ? raw[0]! : '';
  if (!/^\d{1,6}$/.test(text) || Number(text) > MAX_WAIT_MS) {
    return sendError(res, new HttpError(400, 'BAD_MS', `ms must be a whole number from 0 to ${MAX_WAIT_MS}`));
  }
  const ms = Number(text);
  const t0 = performance.now();
  stats.started++;
  stats.pending++;
  stats.maxPending = Math.max(stats.maxPending, stats.pending);
  let done = false;
  const finish = (): boolean => {
    if (done) return false;
    done = true;
    stats.pending--;
    return true;
  };
  const timer = setTimeout(() => {
    if (!finish()) return;
    stats.served++;
    sendJson(res, 200, { ok: true, waitedMs: ms, actualMs: Math.round(performance.now() - t0) });
  }, ms);
  // A caller that times out closes its socket: free the timer at once, or a hang test would
  // leave waits pending (and the counters wrong) for up to a minute.
  res.on('close', () => {
    clearTimeout(timer);
    if (finish()) stats.abandoned++;
  });
}

/**
 * Starts the upstream in this process (port 0 = any free port). Tests should prefer a separate
 * process (see bench/lib/upstream.ts): in-process, a blocked test loop would delay it too.
 */
export function startSlowUpstream(o: { port?: number; host?: string } = {}): Promise<SlowUpstream> {
  const stats: UpstreamStats = { started: 0, pending: 0, maxPending: 0, served: 0, abandoned: 0 };
  const server = http.createServer((req, res) => handle(req, res, stats));
  // Callers open one connection per blocking call; keep idle ones short so they do not pile up.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // A large backlog: a burst of thousands of connects would otherwise overflow the default
    // 511 and stall clients in SYN retries (1 s, then 3 s), which looks like upstream latency.
    server.listen({ port: o.port ?? 0, host: o.host ?? '127.0.0.1', backlog: 4096 }, () => {
      server.off('error', reject);
      const close = () =>
        new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        });
      resolve({ server, port: (server.address() as AddressInfo).port, stats, close });
    });
  });
}

function parseArgs(argv: string[]): { port: number; host: string } {
  const out = { port: 3100, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if ((flag === '--port' || flag === '--host') && value === undefined) throw new Error(`${flag} needs a value.`);
    if (flag === '--port') {
      if (!/^\d{1,5}$/.test(value!) || Number(value) > 65535) throw new Error(`--port must be a whole number from 0 to 65535, not "${value}".`);
      out.port = Number(value);
      i++;
    } else if (flag === '--host') {
      out.host = value!;
      i++;
    } else {
      throw new Error(`Unknown argument "${flag}". Usage: slow-upstream.js [--port N] [--host H]`);
    }
  }
  return out;
}

async function main(): Promise<void> {
  let args: { port: number; host: string };
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  const upstream = await startSlowUpstream(args);
  process.stdout.write(`${JSON.stringify({ msg: 'upstream listening', port: upstream.port, pid: process.pid })}\n`);
  const stop = () => {
    // A test double: pending waits are dropped, so callers see a "down" upstream at once.
    void upstream.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`slow upstream failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
