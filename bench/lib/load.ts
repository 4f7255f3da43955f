/**
 * The load generator of the bench suites and the tests. Two shapes, one request function:
 *
 * - `openLoop`: wrk2-style. Request i is due at t0 + i / rate whatever the server does (closed-loop
 *   tools send less exactly when it matters), and latency counts from the due time, so time spent
 *   queued behind a stall is in the numbers.
 * - `lanes`: closed loop. Each lane sends its next request once the previous one answered, on a
 *   keep-alive connection, a new connection per request, or fetch (undici's own pool); for a
 *   duration, a number of requests, or until stopped. With `rate`, each lane also keeps its own pace
 *   (rate / lanes), and latency counts from the due time too.
 *
 * `closedLoop` (autocannon) stays for the saturation measurements: it sends faster than a node:http
 * client can. The rest of this file are the result shapes the suites read. The tests' own
 * wrappers are test/helpers/http.ts (sendMany, hit) and test/helpers/paced-load.ts.
 */
import autocannon from 'autocannon';
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as hdr from 'hdr-histogram-js';
import { newHistogram, us } from './stats';

export type Via = 'keepalive' | 'fresh' | 'fetch';

export interface Req {
  url: string;
  method?: string;
  body?: string | Buffer;
  headers?: http.OutgoingHttpHeaders;
}

export interface SendOptions {
  /** An agent (keep-alive pool), false (a new connection), or 'fetch'. */
  agent?: http.Agent | false | 'fetch';
  /** Idle time after which the request is given up (`timedOut`); none by default. */
  timeoutMs?: number;
  /** The error a timed-out request reports (default 'client timeout'). */
  timeoutLabel?: string;
  /** Read the body for the serving worker's `pid` (the test apps answer with it); else discard it. */
  readBody?: boolean;
  onSocket?: (s: Socket) => void;
}

export interface Answer {
  /** Undefined when there was no (complete) answer. */
  status?: number;
  /** An error code, message, or the timeout label. */
  error?: string;
  timedOut?: boolean;
  pid?: number;
  endedAt: number;
}

const pidOf = new WeakMap<Socket, number>();

/** The worker a keep-alive socket is known to be on (from an earlier answer on it). */
export function socketPid(socket: Socket): number | undefined {
  return pidOf.get(socket);
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

const errorLabel = (err: unknown): string => {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  return String(e.cause?.code ?? e.code ?? e.message);
};

/** One request; never rejects (a failure is an answer with an `error`). */
export function send(r: Req, o: SendOptions = {}): Promise<Answer> {
  const agent = o.agent ?? false;
  if (agent === 'fetch') return viaFetch(r, o);
  return new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    const done = (a: Omit<Answer, 'endedAt'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...a, endedAt: performance.now() });
    };
    const fail = (err: unknown) => done({ error: errorLabel(err), ...(timedOut ? { timedOut } : {}) });
    const req = http.request(r.url, { method: r.method ?? 'GET', agent, headers: r.headers }, (res) => {
      let body = '';
      if (o.readBody) res.setEncoding('utf8').on('data', (c: string) => (body += c));
      else res.resume();
      res.on('end', () => {
        const pid = o.readBody ? pidIn(body) : undefined;
        if (pid !== undefined && req.socket) pidOf.set(req.socket, pid);
        done({ status: res.statusCode ?? 0, pid });
      });
      res.on('error', fail);
    });
    if (o.onSocket) req.on('socket', o.onSocket);
    req.on('error', fail);
    if (o.timeoutMs !== undefined) {
      req.setTimeout(o.timeoutMs, () => {
        timedOut = true;
        req.destroy(new Error(o.timeoutLabel ?? 'client timeout'));
      });
    }
    req.end(r.body);
  });
}

async function viaFetch(r: Req, o: SendOptions): Promise<Answer> {
  try {
    const res = await fetch(r.url, {
      method: r.method ?? 'GET',
      body: r.body,
      headers: r.headers as Record<string, string> | undefined,
      signal: o.timeoutMs !== undefined ? AbortSignal.timeout(o.timeoutMs) : undefined,
    });
    const pid = pidIn(await res.text());
    return { status: res.status, pid, endedAt: performance.now() };
  } catch (err) {
    return { error: errorLabel(err), endedAt: performance.now() };
  }
}

/** One request as a lane saw it. */
export interface Sent extends Partial<Answer> {
  /** Its place over all lanes, in sending order. */
  i: number;
  lane: number;
  via: Via;
  url: string;
  /** When it was due (its send time when the lanes keep no pace). */
  due: number;
  sentAt: number;
  /** The worker the socket was known to be on when the request went out (keep-alive reuse). */
  socketPid?: number;
}

export interface Lane {
  id: number;
  via: Via;
  agent: http.Agent | false | 'fetch';
  busy: boolean;
  socket?: Socket;
}

export interface LanesOptions extends Omit<SendOptions, 'agent' | 'onSocket'> {
  keepAlive?: number;
  fresh?: number;
  fetch?: number;
  /** The keep-alive lanes share this pool (not destroyed at the end); default: one connection each. */
  agent?: http.Agent;
  /** Stop after this long, or after `amount` requests over all lanes; otherwise at `stop()`. */
  durationS?: number;
  amount?: number;
  /** Requests per second over all lanes, each lane at its own pace (staggered); none: back to back. */
  rate?: number;
  /** GET this URL, or: the request to send (`i` over all lanes, `n` the lane's own count). */
  url?: string;
  next?: (i: number, lane: number, n: number) => Req;
  /** While it returns a promise, lanes wait on it before sending (then their pace restarts from now). */
  paused?: () => Promise<void> | undefined;
  onSend?: (s: Sent) => void;
  onAnswer: (s: Sent) => void;
}

export interface Lanes {
  readonly lanes: Lane[];
  stop(): void;
  /** Resolves once every lane has stopped, with the seconds they ran. */
  readonly done: Promise<number>;
}

export function lanes(o: LanesOptions): Lanes {
  const all: Lane[] = [];
  const add = (count: number | undefined, via: Via) => {
    for (let k = 0; k < (count ?? 0); k++) {
      // A keep-alive lane of its own keeps one socket, so the worker it is on is known.
      const agent = via === 'fetch' ? 'fetch' : via === 'fresh' ? false : (o.agent ?? new http.Agent({ keepAlive: true, maxSockets: 1 }));
      all.push({ id: all.length, via, agent, busy: false });
    }
  };
  add(o.keepAlive, 'keepalive');
  add(o.fresh, 'fresh');
  add(o.fetch, 'fetch');
  const started = performance.now();
  const until = o.durationS !== undefined ? started + o.durationS * 1000 : Infinity;
  let stopped = false;
  let issued = 0;
  const more = () => !stopped && performance.now() < until && (o.amount === undefined || issued < o.amount);
  const period = o.rate ? (1000 * all.length) / o.rate : 0;
  const run = async (lane: Lane) => {
    let due = started + (period * lane.id) / all.length;
    for (let n = 0; more(); n++) {
      if (period) {
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const paused = o.paused?.();
      if (paused) {
        await paused;
        due = performance.now();
      }
      if (!more()) break;
      const i = issued++;
      const req = o.next?.(i, lane.id, n) ?? { url: o.url! };
      const sentAt = performance.now();
      const s: Sent = { i, lane: lane.id, via: lane.via, url: req.url, due: period ? due : sentAt, sentAt };
      o.onSend?.(s);
      lane.busy = true;
      const onSocket = (sock: Socket) => {
        s.socketPid = socketPid(sock);
        lane.socket = sock;
      };
      Object.assign(s, await send(req, { ...o, agent: lane.agent, onSocket }));
      lane.busy = false;
      o.onAnswer(s);
      // A late lane sends at once but does not burst to catch up.
      if (period) due = Math.max(due + period, performance.now() - period);
    }
  };
  const done = Promise.all(all.map(run)).then(() => {
    for (const l of all) if (l.agent && l.agent !== 'fetch' && l.agent !== o.agent) l.agent.destroy();
    return (performance.now() - started) / 1000;
  });
  return { lanes: all, stop: () => (stopped = true), done };
}

// ---- open loop --------------------------------------------------------------------------------

export interface OpenLoopOptions {
  url: string;
  /** Requests per second, sent on a fixed schedule whatever the server does. */
  rate: number;
  durationMs: number;
  /** true: a pool of keep-alive connections (`connections`); false: a new connection per request. */
  keepAlive: boolean;
  connections?: number;
  /** A request not answered this long after its intended send time counts as never completed. */
  timeoutMs?: number;
  /** POST this body (JSON) instead of a GET. */
  body?: Buffer;
  /**
   * Send through this agent instead of one of our own (a pool shared with other clients, as a
   * proxy's upstream pool is); it is not destroyed at the end. Overrides keepAlive/connections.
   */
  agent?: http.Agent;
  /** Count completed requests slower than this (from the intended send time) in `slow`. */
  slowMs?: number;
}

export interface OpenLoopResult {
  /** Latency from the *intended* send time (coordinated omission corrected), µs. */
  latency: hdr.Histogram;
  /** Latency from the actual send time (what a closed-loop tool reports), µs. */
  serviceTime: hdr.Histogram;
  planned: number;
  completed: number;
  errors: number;
  neverCompleted: number;
  /** Completed requests slower than `slowMs` (0 without it). */
  slow: number;
  statuses: Record<string, number>;
}

export async function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const r: OpenLoopResult = {
    latency: newHistogram(), serviceTime: newHistogram(), planned: Math.floor((o.rate * o.durationMs) / 1000),
    completed: 0, errors: 0, neverCompleted: 0, slow: 0, statuses: {},
  };
  const ownAgent = o.agent || !o.keepAlive ? undefined : new http.Agent({ keepAlive: true, maxSockets: o.connections ?? 10 });
  const agent = o.agent ?? ownAgent ?? false;
  const req: Req = o.body
    ? { url: o.url, method: 'POST', body: o.body, headers: { 'content-type': 'application/json', 'content-length': o.body.length } }
    : { url: o.url };
  const timeoutMs = o.timeoutMs ?? 10_000;
  const record = (a: Answer, due: number, sentAt: number) => {
    if (a.timedOut) r.neverCompleted++;
    else if (a.status === 200) {
      r.completed++;
      r.latency.recordValue(us(a.endedAt - due));
      if (o.slowMs !== undefined && a.endedAt - due > o.slowMs) r.slow++;
      r.serviceTime.recordValue(us(a.endedAt - sentAt));
    } else if (a.status === undefined) r.errors++;
    if (a.status !== undefined) r.statuses[a.status] = (r.statuses[a.status] ?? 0) + 1;
  };
  // Each request goes out when due, answered or not: a late one goes at once, with its due time kept.
  const t0 = performance.now() + 5;
  const answers: Promise<void>[] = [];
  for (let i = 0; i < r.planned; i++) {
    const due = t0 + (i * 1000) / o.rate;
    if (due > performance.now()) await sleep(due - performance.now());
    const sentAt = performance.now();
    answers.push(send(req, { agent, timeoutMs: Math.max(1, due + timeoutMs - sentAt) }).then((a) => record(a, due, sentAt)));
  }
  await Promise.all(answers);
  ownAgent?.destroy();
  return r;
}

// ---- closed loops: autocannon for saturation, node:http lanes for the rest ----------------------

export interface ClosedLoopResult {
  requests: number;
  reqPerSec: number;
  errors: number;
  non2xx: number;
  /** What went wrong, with counts: `status 503`, an error code such as `ECONNRESET`, or `request timed out`. */
  failureKinds: Record<string, number>;
  /** Every response's time, µs (autocannon's own percentiles have no p95). */
  latency: hdr.Histogram;
  durationS: number;
}

/**
 * autocannon, closed loop: `connections` keep-alive connections each send as fast as answered
 * (for `durationS`, or until `amount` requests). For a fixed rate use laneLoop: autocannon's
 * `overallRate` lets each connection send its share of a second back to back and then wait, so
 * "1,000 req/s" was ~100 ms of saturation and ~900 ms of idle each second (ADR 0020).
 */
export async function closedLoop(o: { url: string; connections: number; durationS: number; amount?: number; timeoutS?: number }): Promise<ClosedLoopResult> {
  const latency = newHistogram();
  const failureKinds: Record<string, number> = {};
  const count = (kind: string) => addFailures(failureKinds, { [kind]: 1 });
  // Without a callback autocannon returns an emitter that is also a promise of the result.
  const instance = autocannon({
    url: o.url, connections: o.connections, duration: o.durationS, amount: o.amount, timeout: o.timeoutS,
  }) as unknown as Promise<autocannon.Result> & import('node:events').EventEmitter;
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    latency.recordValue(us(responseTime));
    if (status < 200 || status > 299) count(`status ${status}`);
  });
  // A timeout arrives here too, as an error without a code ('request timed out').
  instance.on('reqError', (err: NodeJS.ErrnoException) => count(err.code ?? err.message));
  const res = await instance;
  return {
    requests: res.requests.total,
    reqPerSec: res.requests.total / (res.duration || o.durationS),
    errors: res.errors, // autocannon's count of errors already includes its timeouts
    non2xx: res.non2xx,
    failureKinds,
    latency,
    durationS: res.duration,
  };
}

/**
 * `connections` lanes, for `durationS` or until `amount` requests: each with a new connection per
 * request (autocannon cannot do this faithfully: its reconnects drop responses from its counts,
 * and it is what dispatch costs are about), or with `keepAlive` one connection each. With `rate`,
 * evenly paced: that many requests per second over all lanes, each lane at its own staggered pace.
 * With `next`, each lane sends requests of its own: the S1 and S2 suites' simulated users, one lane
 * a user (as locust did in their reports), who give up on a request after `timeoutMs` (`timeout`).
 */
export async function laneLoop(o: {
  url?: string;
  next?: (lane: number, n: number) => Req;
  connections: number;
  durationS: number;
  amount?: number;
  keepAlive?: boolean;
  rate?: number;
  timeoutMs?: number;
}): Promise<ClosedLoopResult> {
  const r: ClosedLoopResult = { requests: 0, reqPerSec: 0, errors: 0, non2xx: 0, failureKinds: {}, latency: newHistogram(), durationS: 0 };
  const count = (kind: string) => addFailures(r.failureKinds, { [kind]: 1 });
  r.durationS = await lanes({
    ...(o.keepAlive ? { keepAlive: o.connections } : { fresh: o.connections }), url: o.url, rate: o.rate, timeoutMs: o.timeoutMs, timeoutLabel: 'timeout',
    ...(o.next ? { next: (_: number, lane: number, n: number) => o.next!(lane, n) } : {}),
    ...(o.amount === undefined ? { durationS: o.durationS } : { amount: o.amount }),
    onAnswer: (s) => {
      if (s.status === undefined) {
        r.errors++;
        return count(s.error!);
      }
      r.requests++;
      if (s.status < 200 || s.status > 299) {
        r.non2xx++;
        count(`status ${s.status}`);
      }
      r.latency.recordValue(us(s.endedAt! - s.sentAt));
    },
  }).done;
  r.reqPerSec = r.requests / r.durationS;
  return r;
}

/** Adds one run's failure kinds into a running tally (for results merged over windows or rounds). */
export function addFailures(into: Record<string, number>, from: Record<string, number>): Record<string, number> {
  for (const [kind, n] of Object.entries(from)) into[kind] = (into[kind] ?? 0) + n;
  return into;
}

/** A row's `failed` text: undefined when nothing failed, else the count and each kind, e.g. `2 failed requests (status 503 ×1, ECONNRESET ×1)`. */
export function describeFailures(kinds: Record<string, number>): string | undefined {
  const entries = Object.entries(kinds);
  const total = entries.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return undefined;
  return `${total} failed requests (${entries.map(([k, n]) => `${k} ×${n}`).join(', ')})`;
}
