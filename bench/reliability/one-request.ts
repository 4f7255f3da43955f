/**
 * One request of the paced load, over node:http (a given agent, or a new connection) or fetch.
 * Answers of the apps under test carry the serving worker's `pid`; it is remembered per socket,
 * so the next request on a keep-alive socket knows which worker it goes to.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';

export interface RequestSpec {
  method?: string;
  path: string;
  body?: string;
  contentType?: string;
}

export interface Answer {
  status: number;
  pid?: number;
}

const pidOf = new WeakMap<Socket, number>();

/** The worker a socket is known to be on (from an earlier answer on it). */
export function socketPid(socket: Socket): number | undefined {
  return pidOf.get(socket);
}

export function viaHttp(base: string, agent: http.Agent | false, spec: RequestSpec, timeoutMs: number, onSocket: (s: Socket) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (spec.body !== undefined) {
      headers['content-type'] = spec.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(spec.body));
    }
    const req = http.request(`${base}${spec.path}`, { method: spec.method ?? 'GET', agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const pid = pidIn(body);
        if (pid !== undefined) pidOf.set(req.socket!, pid);
        resolve({ status: res.statusCode ?? 0, pid });
      });
      res.on('error', reject);
    });
    req.on('socket', onSocket);
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.end(spec.body);
  });
}

export async function viaFetch(base: string, spec: RequestSpec, timeoutMs: number): Promise<Answer> {
  const res = await fetch(`${base}${spec.path}`, {
    method: spec.method ?? 'GET',
    body: spec.body,
    headers: spec.body !== undefined ? { 'content-type': spec.contentType ?? 'application/json' } : undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, pid: pidIn(await res.text()) };
}

function pidIn(body: string): number | undefined {
  if (!body.startsWith('{')) return undefined;
  try {
    const pid = (JSON.parse(body) as { pid?: unknown }).pid;
    return typeof pid === 'number' ? pid : undefined;
  } catch {
    return undefined;
  }
}
