import { performance } from 'node:perf_hooks';
import { bigClient } from '../lib/big-client';
import { lanes } from '../lib/load';
import { startPeer, type PeerKind } from '../lib/servers';
import { findRow, type Context, type Profile, type Row, type Suite } from '../lib/suite';

/** Per profile: seconds per run, records per big response, worker counts. */
const PROFILES: Record<Profile, { seconds: number; clients: number; workers: number[] }> = {
  tiny: { seconds: 2, clients: 5000, workers: [1] },
  quick: { seconds: 6, clients: 40_000, workers: [1] },
  full: { seconds: 15, clients: 40_000, workers: [1, 2] },
};

export const probeSuite: Suite = {
  name: 'probe',
  title: 'S0: probe requests per second while big responses are served',
  guide:
    'Scenario S0\'s probe collapse: probe requests answered per second (two keep-alive connections probing back to ' +
    'back) while a client keeps two 40,000-record responses in flight, naive `res.json()` vs `streamJson()`. Probes go ' +
    'to a worker route (`/ping`, what the report\'s liveness probe hit) and to the primary\'s `/livez` (what drover\'s ' +
    'Kubernetes manifests probe). The worst second is the number a liveness probe with a short timeout would see.',
  estimateS: { tiny: 12, quick: 30, full: 70 },
  async run(ctx: Context) {
    const { seconds, clients, workers } = PROFILES[ctx.profile];
    const rows: Row[] = [];
    const runs: { peer: Extract<PeerKind, 'drover least-busy' | 'node:cluster'>; mode: 'naive' | 'stream' }[] = [
      { peer: 'drover least-busy', mode: 'naive' }, { peer: 'node:cluster', mode: 'naive' }, { peer: 'drover least-busy', mode: 'stream' },
    ];
    for (const w of workers) {
      for (const { peer, mode } of runs) {
        ctx.progress(`${w} worker(s), ${peer}, ${mode}, ${seconds}s`);
        const drover = peer !== 'node:cluster';
        const server = await startPeer(peer, w, { args: ['--worker-timeout', '60s', '--shed-loop-delay', '0ms'], timeoutMs: 30_000 });
        try {
          // The two big clients run in processes of their own: reading 23 MB responses here would
          // slow this process's probes and count the client's CPU as the server's stall.
          const big = [0, 1].map(() => bigClient(server.url(`/clients?count=${clients}&mode=${mode}`)));
          await Promise.all(big.map((b) => b.ready));
          const started = performance.now();
          const until = started + seconds * 1000;
          const probes = [probeLoop(server.url('/ping'), started, until), ...(drover ? [probeLoop(server.controlUrl!('/livez'), started, until)] : [])];
          const [worker, primary] = await Promise.all(probes);
          const bigDone = (await Promise.all(big.map((b) => b.stop()))).map((r) => r.latency.totalCount);
          for (const [target, r] of [['worker /ping', worker], ['primary /livez', primary]] as const) {
            if (!r) continue;
            const perSecond = r.perSecond.slice(0, seconds);
            rows.push({
              config: { workers: w, peer, mode, target },
              values: {
                perSecond: perSecond.join(' '),
                worstSecond: Math.min(...perSecond),
                bestSecond: Math.max(...perSecond),
                failedProbes: r.failed,
                bigResponses: bigDone.reduce((a, b) => a + b, 0),
              },
            });
          }
        } catch (err) {
          rows.push({ config: { workers: w, peer, mode }, values: {}, failed: String(err) });
        } finally {
          await server.stop();
        }
      }
    }
    const worst = (peer: string, mode: string, target: string) => findRow(rows, { workers: 1, peer, mode, target })?.values.worstSecond as number | undefined;
    const derived: Record<string, number> = {};
    for (const [peer, mode, target] of [
      ['drover least-busy', 'naive', 'worker /ping'], ['node:cluster', 'naive', 'worker /ping'], ['drover least-busy', 'stream', 'worker /ping'],
      ['drover least-busy', 'naive', 'primary /livez'], ['drover least-busy', 'stream', 'primary /livez'],
    ] as const) {
      const v = worst(peer, mode, target);
      if (v !== undefined) derived[`worst second at 1 worker, ${target}, ${peer} ${mode}`] = v;
    }
    return { settings: { seconds, probeConnections: 2, bigLoops: '2, in processes of their own', bigPayload: `/clients?count=${clients}`, workers }, rows, derived };
  },
};

/** Two keep-alive connections probing back to back (two lanes); answers counted per elapsed second. */
async function probeLoop(url: string, started: number, until: number): Promise<{ perSecond: number[]; failed: number }> {
  const perSecond = new Array<number>(Math.ceil((until - started) / 1000)).fill(0);
  let failed = 0;
  await lanes({
    keepAlive: 2, url, timeoutMs: 15_000, durationS: (until - performance.now()) / 1000,
    onAnswer: (s) => {
      const second = Math.floor((s.endedAt! - started) / 1000);
      if (s.status !== 200) failed++;
      else if (second < perSecond.length) perSecond[second]!++;
    },
  }).done;
  return { perSecond, failed };
}
