/**
 * Slowloris: many connections sending their headers (or body) a byte at a time. drover's worker
 * server closes them at --headers-timeout / --request-timeout (checked every second) while /ping
 * keeps answering.
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { percentile } from '../../../bench/lib/stats';
import { Fleet, lanesFor, pick, sleep, status, reliabilityCase, CaseBuilder } from '../../helpers/reliability';
import { PacedLoad } from '../../helpers/paced-load';
import { round, waitUntil } from '../../helpers/proc';
import type { CaseResult, ScenarioOptions } from '../../../bench/reliability/cases';

/** Node checks header/request timeouts every `connectionsCheckingInterval` (drover: 1 s). */
const CHECK_INTERVAL_MS = 1000;
const SLACK_MS = 1500;
const TIMEOUT_STATUS_BUG =
  "drover bug: a connection cut by --headers-timeout or --request-timeout is answered '400 Bad Request', not '408 Request Timeout': the worker's " +
  "clientError handler (src/worker/main.ts, server.on('clientError')) answers 400 for every error but HPE_HEADER_OVERFLOW, including ERR_HTTP_REQUEST_TIMEOUT, for which Node's own " +
  "handler (lib/_http_server.js socketOnError) sends 408 (and 413 for HPE_CHUNK_EXTENSIONS_OVERFLOW); it also writes its raw answer whenever the socket is writable, where Node's checks that no response has started on it";

interface Victim {
  socket: net.Socket;
  kind: 'headers' | 'body';
  script: string;
  pos: number;
  openedAt: number;
  closedMs?: number;
  answer: string;
}

/** Opens a connection that writes `first` at once, then one more byte of `rest` on every tick. */
function open(port: number, kind: Victim['kind'], first: string, rest: string): Victim {
  const v: Victim = { socket: net.connect(port, '127.0.0.1'), kind, script: rest, pos: 0, openedAt: performance.now(), answer: '' };
  v.socket.setNoDelay(true);
  v.socket.on('connect', () => v.socket.write(first));
  v.socket.on('data', (b: Buffer) => (v.answer += b.toString('latin1')));
  v.socket.on('error', () => {});
  v.socket.on('close', () => (v.closedMs ??= performance.now() - v.openedAt));
  return v;
}

export async function slowloris(o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('slowloris');
  const fleet = new Fleet();
  const headersTimeoutMs = 2000;
  const requestTimeoutMs = 4000;
  const victims: Victim[] = [];
  try {
    const d = await fleet.start({ args: ['--workers', '2', '--headers-timeout', `${headersTimeoutMs}ms`, '--request-timeout', `${requestTimeoutMs}ms`] });
    const pids = (await status(d)).workers.map((w) => w.pid).sort().join(',');
    const rate = pick(o.profile, 300, 500);
    const n = lanesFor(rate);
    const load = new PacedLoad({ base: d.url(''), rate, lanes: { keepAlive: n / 2, fresh: n / 2 } }).start('before the attack');
    await sleep(2000);
    const headerConns = pick(o.profile, 200, 400);
    const bodyConns = pick(o.profile, 20, 50);
    load.beginPhase('during the attack');
    const attackAt = performance.now();
    const headerScript = `ET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(1000)}`;
    for (let i = 0; i < headerConns; i++) victims.push(open(d.port, 'headers', 'G', headerScript));
    const bodyHead = 'POST /ingest?mode=offload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[';
    for (let i = 0; i < bodyConns; i++) victims.push(open(d.port, 'body', bodyHead, ' '.repeat(1000)));
    // One byte per connection every 250 ms, for as long as the connection is open.
    const ticker = setInterval(() => {
      for (const v of victims) {
        if (v.closedMs !== undefined || v.socket.destroyed || !v.socket.writable || v.pos >= v.script.length) continue;
        v.socket.write(v.script[v.pos++]!);
      }
    }, 250);
    const capMs = requestTimeoutMs + CHECK_INTERVAL_MS + SLACK_MS + 3000;
    await waitUntil(() => victims.every((v) => v.closedMs !== undefined), 'every slow connection is closed', capMs, 50).catch(() => undefined);
    const attackMs = performance.now() - attackAt;
    clearInterval(ticker);
    load.beginPhase('after the attack');
    await sleep(1000);
    const fig = await load.stop();
    const st = await status(d);
    const openConnections = st.workers.reduce((a, w) => a + (w.connections ?? 0), 0);

    const summary = (kind: Victim['kind']) => {
      const vs = victims.filter((v) => v.kind === kind);
      const closed = vs.filter((v) => v.closedMs !== undefined).map((v) => v.closedMs!);
      const answers: Record<string, number> = {};
      for (const v of vs) {
        const line = /^HTTP\/1\.1 (\d{3})/.exec(v.answer)?.[1] ?? (v.closedMs === undefined ? 'still open' : 'closed, no answer');
        answers[line] = (answers[line] ?? 0) + 1;
      }
      return { total: vs.length, closed: closed.length, minMs: Math.round(Math.min(...closed)), p50Ms: Math.round(percentile(closed, 50)), maxMs: Math.round(Math.max(...closed)), answers };
    };
    const h = summary('headers');
    const b = summary('body');
    const [before, during] = [fig.phases[0]!, fig.phases[1]!];
    const headersLimit = headersTimeoutMs + CHECK_INTERVAL_MS + SLACK_MS;
    const requestLimit = requestTimeoutMs + CHECK_INTERVAL_MS + SLACK_MS;
    c.check(`all ${h.total} header-dribbling connections closed`, h.closed === h.total, `${h.closed}/${h.total}`);
    c.check('…within --headers-timeout + the 1 s check interval (+1.5 s slack)', h.maxMs <= headersLimit, h.maxMs, headersLimit);
    c.check('…not before --headers-timeout', h.minMs >= headersTimeoutMs - 50, h.minMs, `≥ ${headersTimeoutMs} ms`);
    c.check(`all ${b.total} body-dribbling connections closed`, b.closed === b.total, `${b.closed}/${b.total}`);
    c.check('…within --request-timeout + the check interval (+1.5 s slack)', b.maxMs <= requestLimit, b.maxMs, requestLimit);
    const all408 = (h.answers['408'] ?? 0) + (b.answers['408'] ?? 0) === h.total + b.total;
    // The known bug is a 400 where a 408 belongs; anything else (no answer at all) is a plain failure.
    const only400or408 = [...Object.keys(h.answers), ...Object.keys(b.answers)].every((k) => k === '400' || k === '408');
    c.check('each was answered 408 Request Timeout before the close', all408, JSON.stringify({ headers: h.answers, body: b.answers }), '408', !all408 && only400or408 ? TIMEOUT_STATUS_BUG : undefined);
    c.check('/ping during the attack: zero failed', during.failed === 0, during.failed, 0);
    c.check('/ping p99 during the attack ≤ 500 ms', during.p99Ms <= 500, during.p99Ms, 500);
    c.check('the workers stayed up (same pids)', st.workers.map((w) => w.pid).sort().join(',') === pids, st.workers.map((w) => w.pid).join(','));
    c.check('no slow connection left on the workers', openConnections <= n + 5, openConnections, `≤ ${n + 5} (the load's own)`);
    c.note(
      `${h.total} connections sent a request a byte every 250 ms (never finishing the headers) and ${b.total} sent complete headers then a body a byte every 250 ms; ` +
        `--headers-timeout ${headersTimeoutMs} ms, --request-timeout ${requestTimeoutMs} ms. Header dribblers were closed after ${h.minMs}–${h.maxMs} ms (median ${h.p50Ms}), ` +
        `body dribblers after ${b.minMs}–${b.maxMs} ms. /ping p99 ${before.p99Ms} ms before the attack, ${during.p99Ms} ms during it (max ${during.maxMs} ms, ${during.ok} answers, ` +
        `${round(attackMs / 1000)} s), latency measured from each request's due time.`,
    );
    return c.done({
      load: fig,
      faults: `${h.total + b.total} slow connections`,
      failed: fig.failed,
      bound: 0,
      recoveryMs: Math.max(h.maxMs, b.maxMs),
      inputs: h.total + b.total,
      details: { headers: h, body: b, headersTimeoutMs, requestTimeoutMs, pingBefore: before, pingDuring: during, openConnectionsAfter: openConnections },
    });
  } finally {
    for (const v of victims) v.socket.destroy();
    await fleet.stopAll();
  }
}

reliabilityCase('slowloris', slowloris);
