import * as http from 'node:http';

export interface LoadResult {
  ok: number;
  failed: number;
  /** Failure descriptions (status codes or error codes) with counts. */
  errors: Record<string, number>;
  /** Worker pids seen in responses (demo /ping answers with its pid). */
  pids: Set<number>;
}

export interface LoadOptions {
  /** Loops on keep-alive connections through http.Agent. */
  keepAlive?: number;
  /** Loops opening a new connection per request. */
  fresh?: number;
  /** Loops using fetch (undici's own keep-alive pool). */
  fetchLoops?: number;
}

function get(url: string, agent: http.Agent | false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
  });
}

/**
 * Closed-loop load until `stop` resolves: every loop sends its next request when the previous one
 * answered. Bounded by construction (a handful of loops), loopback only.
 */
export async function loadUntil(url: string, stop: Promise<unknown>, o: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, errors: {}, pids: new Set() };
  let stopped = false;
  void stop.finally(() => (stopped = true));
  const record = (status: number, body: string) => {
    if (status === 200) {
      result.ok++;
      try {
        const pid = (JSON.parse(body) as { pid?: number }).pid;
        if (pid) result.pids.add(pid);
      } catch {
        /* not the demo app */
      }
    } else {
      result.failed++;
      result.errors[`status ${status}`] = (result.errors[`status ${status}`] ?? 0) + 1;
    }
  };
  const fail = (err: unknown) => {
    result.failed++;
    const key = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    result.errors[key] = (result.errors[key] ?? 0) + 1;
  };
  const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const loop = async (agent: http.Agent | false) => {
    while (!stopped) {
      try {
        const r = await get(url, agent);
        record(r.status, r.body);
      } catch (err) {
        fail(err);
      }
    }
  };
  const fetchLoop = async () => {
    while (!stopped) {
      try {
        const res = await fetch(url);
        record(res.status, await res.text());
      } catch (err) {
        fail((err as Error & { cause?: unknown }).cause ?? err);
      }
    }
  };
  const loops: Promise<void>[] = [];
  for (let i = 0; i < (o.keepAlive ?? 0); i++) loops.push(loop(keepAliveAgent));
  for (let i = 0; i < (o.fresh ?? 0); i++) loops.push(loop(false));
  for (let i = 0; i < (o.fetchLoops ?? 0); i++) loops.push(fetchLoop());
  await Promise.all(loops);
  keepAliveAgent.destroy();
  return result;
}

export async function getJson<T = Record<string, unknown>>(url: string, init?: RequestInit): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    body = text as unknown as T;
  }
  return { status: res.status, body, headers: res.headers };
}

export interface ManyResult {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  /** Responses per worker pid (from the JSON body's `pid`). */
  byPid: Map<number, number>;
}

/** Exactly `n` requests, `concurrency` at a time, each on a new connection unless `keepAlive`. */
export async function sendMany(
  url: string | ((i: number) => string),
  n: number,
  o: { method?: string; concurrency?: number; keepAlive?: boolean } = {},
): Promise<ManyResult> {
  const result: ManyResult = { ok: 0, failed: 0, statuses: {}, byPid: new Map() };
  const agent = o.keepAlive ? new http.Agent({ keepAlive: true }) : false;
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const target = typeof url === 'function' ? url(i) : url;
      const req = http.request(target, { method: o.method ?? 'GET', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          result.statuses[code] = (result.statuses[code] ?? 0) + 1;
          if (code < 500) result.ok++;
          else result.failed++;
          try {
            const pid = (JSON.parse(body) as { pid?: number }).pid;
            if (pid) result.byPid.set(pid, (result.byPid.get(pid) ?? 0) + 1);
          } catch {
            /* not JSON */
          }
          resolve();
        });
      });
      req.on('error', () => {
        result.failed++;
        resolve();
      });
      req.end();
    });
  const worker = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: Math.min(n, o.concurrency ?? 8) }, worker));
  if (agent) agent.destroy();
  return result;
}
