import { closedLoop, describeFailures } from '../lib/closed-loop';
import { freshLoop } from '../lib/fresh-loop';
import { PEERS, startPeer, type PeerKind } from '../lib/servers';
import { summarize } from '../lib/stats';
import type { Context, Row, Suite } from '../lib/suite';

type Client = 'keep-alive' | 'new-connection';

/**
 * The same app and the same /ping load under drover (both dispatchers), bare node:cluster and pm2
 * cluster mode, alternated round by round in one run: what drover's primary costs per request.
 */
export const peersSuite: Suite = {
  name: 'peers',
  title: 'Peers: /ping throughput under drover, bare node:cluster and pm2 cluster mode',
  estimateS: { tiny: 50, quick: 400, full: 1050 },
  async run(ctx: Context) {
    const p = ctx.profile;
    const workers = 2;
    const durationS = p === 'tiny' ? 1 : p === 'quick' ? 5 : 10;
    const warmS = p === 'tiny' ? 0.5 : 5;
    // Shared machine: rounds alternate every peer, and ratios are medians over the rounds.
    const rounds = p === 'full' ? 8 : p === 'quick' ? 4 : 1; // multiples of 4: each peer in each position equally often
    const connections = 10;
    const rows: Row[] = [];
    const rps: Record<string, number[]> = {};
    for (let round = 1; round <= rounds; round++) {
      // Counterbalanced: the order of peers rotates each round, so none always runs first (right
      // after the previous server's exit) or last.
      const order = PEERS.map((_, i) => PEERS[(i + round - 1) % PEERS.length]!);
      for (const peer of order) {
        let server;
        try {
          server = await startPeer(peer, workers);
        } catch (err) {
          rows.push({ config: { peer, round }, values: {}, failed: `did not start: ${(err as Error).message}` });
          continue;
        }
        try {
          for (const client of ['keep-alive', 'new-connection'] as Client[]) {
            ctx.progress(`round ${round}/${rounds}: ${peer}, ${client}, ${durationS}s`);
            const load = client === 'keep-alive' ? closedLoop : freshLoop;
            // Warm-up: a fresh drover needs ~5 s of /ping before its req/s levels off (the JIT has
            // more code to optimise than a bare cluster's); 0.5 s measured partly warm-up speed.
            await load({ url: server.url('/ping'), connections, durationS: warmS });
            const r = await load({ url: server.url('/ping'), connections, durationS });
            const s = summarize(r.latency);
            (rps[`${peer}|${client}`] ??= []).push(r.reqPerSec);
            rows.push({
              config: { peer, client, round },
              values: { reqPerSec: Math.round(r.reqPerSec), p50Ms: s.medianMs, p95Ms: s.p95Ms, p99Ms: s.p99Ms, errors: r.errors + r.non2xx },
              failed: describeFailures(r.failureKinds),
            });
          }
        } finally {
          await server.stop();
        }
      }
    }
    const derived: Record<string, number> = {};
    for (const client of ['keep-alive', 'new-connection'] as Client[]) {
      const base = rps[`drover least-busy|${client}`] ?? [];
      for (const peer of PEERS.filter((x) => x !== 'drover least-busy') as PeerKind[]) {
        // Median of the per-round ratios: each round ran every peer back to back.
        const ratios = (rps[`${peer}|${client}`] ?? []).map((v, i) => v / (base[i] ?? NaN)).sort((a, b) => a - b);
        derived[`${client} req/s ${peer} / drover least-busy`] = Math.round((ratios[Math.floor(ratios.length / 2)] ?? NaN) * 100) / 100;
      }
    }
    return { settings: { workers, warmupSeconds: warmS, durationSeconds: durationS, rounds, connections, route: '/ping' }, rows, derived };
  },
};
