import * as http from 'node:http';
import { bigLoop } from '../lib/big-client';
import { startNginx } from '../lib/nginx';
import { openLoop } from '../lib/load';
import { startPeer, type Server } from '../lib/servers';
import { median, round, summarize } from '../lib/stats';
import type { Context, Profile, Row, Suite } from '../lib/suite';

type Peer = 'drover least-busy' | 'node:cluster';
/**
 * How requests reach the servers: a real nginx pooling keep-alive upstream connections (reused
 * most recently used first), or a client pool of keep-alive connections handed out in turn (FIFO,
 * as some proxies and client libraries do), shared by the small and the big requests.
 */
type Front = 'nginx (MRU pool)' | 'FIFO pool';

const PEERS: Peer[] = ['drover least-busy', 'node:cluster'];
const FRONTS: Front[] = ['nginx (MRU pool)', 'FIFO pool'];
/**
 * Small requests per second. At 50/s a pool needs one or two connections, so a blocked worker's
 * pooled connection is mostly the one busy with the block; at 400/s the pool grows and keeps
 * idle connections to every worker, including the blocked one.
 */
const RATES = [50, 400];
/** A slow response counted as an outlier: a small request that waited behind big work. */
const OUTLIER_MS = 100;

/** Per profile: worker counts, rounds, seconds of load, and the big requests. */
const PROFILES: Record<Profile, { workerCounts: number[]; rounds: number; loadS: number; bigs: string[] }> = {
  tiny: { workerCounts: [2], rounds: 1, loadS: 1.5, bigs: ['/block?ms=400'] },
  quick: { workerCounts: [1, 2, 4], rounds: 3, loadS: 5, bigs: ['/block?ms=400'] },
  full: { workerCounts: [1, 2, 4], rounds: 5, loadS: 5, bigs: ['/block?ms=400', '/clients?count=40000&mode=naive'] },
};

export const proxySuite: Suite = {
  name: 'proxy',
  title: 'Behind a proxy that pools keep-alive connections: drover against bare node:cluster',
  guide:
    'Behind a reverse proxy, as in production: a real nginx (one worker process, `upstream { keepalive 32; }`, ' +
    '`proxy_http_version 1.1`) in front of drover and of bare `node:cluster`, or a client pool of keep-alive connections ' +
    'handed out in turn (FIFO) shared by all requests. Small `/ping` requests at 50/s and 400/s go through the front (open loop) ' +
    'while one client loops on a 400 ms `/block` through the same front. A proxy\'s pooled connections are dispatched ' +
    'only when the proxy opens them; after that they stay on their worker, so what dispatch can do here depends on how ' +
    'often the pool opens connections. drover and node:cluster alternate round by round behind the same nginx; the ' +
    'derived ratios are medians of per-round ratios, and `over100ms` counts small requests that waited behind a block. ' +
    'At one worker the looping block keeps the only worker busy all the time: small requests are served in the short ' +
    'gaps between blocks, and a connection nginx opens meanwhile must first be adopted, which Node does for one socket ' +
    'per round trip between the processes (under drover and node:cluster alike), so about one per gap. When nginx ' +
    'opens connections faster than that, the queue runs away into seconds, in some rounds and not in others, under ' +
    'both: the one-worker rows measure that race, not dispatch (ADR 0024).',
  estimateS: { tiny: 30, quick: 420, full: 1500 },
  requires: [{ program: 'nginx', debian: 'nginx-light' }],
  async run(ctx: Context) {
    const { workerCounts, rounds, loadS, bigs } = PROFILES[ctx.profile];
    const rows: Row[] = [];
    for (const workers of workerCounts) {
      const servers: Partial<Record<Peer, Server>> = {};
      let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
      try {
        for (const peer of PEERS) servers[peer] = await startPeer(peer, workers, { args: ['--shed-loop-delay', '0ms'], timeoutMs: 30_000 });
        nginx = await startNginx({ drover: port(servers['drover least-busy']!), cluster: port(servers['node:cluster']!) });
        // One worker: nowhere else to go, whatever the rate.
        for (const [big, rate] of bigs.flatMap((b) => (workers === 1 ? [50] : RATES).map((r) => [b, r] as const))) {
          for (const front of FRONTS) {
            for (let round = 0; round < rounds; round++) {
              // Counterbalanced: drover first in even rounds, node:cluster first in odd ones.
              for (const peer of round % 2 === 0 ? PEERS : [...PEERS].reverse()) {
                ctx.progress(`${workers} worker(s), ${big}, ${rate}/s, ${front}, round ${round + 1}/${rounds}, ${peer}`);
                const config = { workers, big, rate, front, peer, round: round + 1 };
                const base = front === 'FIFO pool'
                  ? `http://127.0.0.1:${port(servers[peer]!)}`
                  : `http://127.0.0.1:${nginx.ports[peer === 'node:cluster' ? 'cluster' : 'drover']}`;
                try {
                  rows.push({ config, ...(await measure(base, front, big, rate, loadS)) });
                } catch (err) {
                  rows.push({ config, values: {}, failed: String(err) });
                }
              }
            }
          }
        }
      } catch (err) {
        rows.push({ config: { workers }, values: {}, failed: String(err) });
      } finally {
        await nginx?.stop();
        for (const s of Object.values(servers)) await s.stop();
      }
    }
    return {
      settings: {
        smallRatePerSecond: RATES, loadSeconds: loadS, rounds, bigClients: 1, outlierMs: OUTLIER_MS,
        nginx: 'one worker process, upstream keepalive 32 (closed after 4 s idle), proxy_http_version 1.1, Connection header cleared; clients keep 20 connections to nginx',
        fifoPool: 'one http.Agent (keepAlive, maxSockets 32, scheduling fifo) shared by the small and the big requests',
      },
      rows,
      derived: derive(rows),
    };
  },
};

function port(s: Server): number {
  return Number(new URL(s.url('/')).port);
}

async function measure(base: string, front: Front, big: string, rate: number, loadS: number): Promise<Omit<Row, 'config'>> {
  // The FIFO pool is one pool for everything, as a proxy's upstream pool is; through nginx the
  // clients keep their own connections to nginx and nginx pools towards the servers.
  const pool = front === 'FIFO pool' ? new http.Agent({ keepAlive: true, maxSockets: 32, scheduling: 'fifo' }) : undefined;
  try {
    const small = { url: `${base}/ping`, rate, keepAlive: true, connections: 20, agent: pool, slowMs: OUTLIER_MS };
    await openLoop({ ...small, durationMs: 1000 }); // warm-up: JIT and both pools
    const loop = bigLoop(`${base}${big}`, undefined, pool ?? false);
    const loaded = await openLoop({ ...small, durationMs: loadS * 1000 });
    const bigDone = await loop.stop();
    const s = summarize(loaded.latency);
    const failures = loaded.errors + loaded.neverCompleted + bigDone.errors;
    return {
      values: {
        smallCount: s.count, smallMedian: s.medianMs, smallP95: s.p95Ms, smallP99: s.p99Ms, smallMax: s.maxMs,
        [`over${OUTLIER_MS}ms`]: loaded.slow, bigCount: bigDone.latencyMs.length, errors: loaded.errors + bigDone.errors, neverCompleted: loaded.neverCompleted,
      },
      failed: failures > 0.01 * loaded.planned ? `${failures} failed small/large requests` : undefined,
    };
  } finally {
    pool?.destroy();
  }
}

/**
 * Per workers × big work × front: medians over rounds of node:cluster's p95, p99 and max over
 * drover's in the same round (> 1: drover's small requests were faster), and the outliers of each.
 */
function derive(rows: Row[]): Record<string, number> {
  const out: Record<string, number> = {};
  const ok = rows.filter((r) => !r.failed && r.config.peer);
  const keyOf = (r: Row) => `${r.config.workers}|${r.config.big}|${r.config.rate}|${r.config.front}`;
  const keys = [...new Set(ok.map(keyOf))];
  for (const key of keys) {
    const [workers, big, rate, front] = key.split('|');
    const of = (peer: Peer) => ok.filter((r) => keyOf(r) === key && r.config.peer === peer);
    const d = of('drover least-busy');
    const c = of('node:cluster');
    const label = `${workers}w ${big} ${rate}/s via ${front}`;
    for (const v of ['smallP95', 'smallP99', 'smallMax'] as const) {
      const ratios = d.flatMap((dr) => {
        const cr = c.find((x) => x.config.round === dr.config.round);
        return cr ? [(cr.values[v] as number) / (dr.values[v] as number)] : [];
      });
      if (ratios.length) out[`${label}: ${v.slice(5).toLowerCase()} node:cluster / drover (median of ${ratios.length})`] = round(median(ratios), 2);
    }
    for (const [name, rs] of [['drover', d], ['node:cluster', c]] as const) {
      if (rs.length) out[`${label}: ${name} p95 ms (median)`] = median(rs.map((r) => r.values.smallP95 as number));
      if (rs.length) out[`${label}: ${name} small requests over ${OUTLIER_MS} ms (sum)`] = rs.reduce((a, r) => a + (r.values[`over${OUTLIER_MS}ms`] as number), 0);
    }
  }
  return out;
}
