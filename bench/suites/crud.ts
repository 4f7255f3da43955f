import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startDrover } from '../lib/drover';
import { postgresBinDir, startPostgres } from '../lib/postgres';
import { Client } from 'pg';
import { cpuClock, tree } from '../lib/proc';
import { round, summarize } from '../lib/stats';
import { withRunning, type Context, type Profile, type Row, type Suite } from '../lib/suite';
import { laneLoop } from '../lib/load';

/** Per profile: simulated users, seconds per row, worker counts, and PostgreSQL rows when it is installed. */
const PROFILES: Record<Profile, { users: number; durationS: number; workerCounts: number[]; postgres: boolean }> = {
  tiny: { users: 10, durationS: 2, workerCounts: [1, 2, 4], postgres: false },
  quick: { users: 100, durationS: 6, workerCounts: [1, 2, 4], postgres: true },
  full: { users: 500, durationS: 30, workerCounts: [1, 2, 4, 8], postgres: true },
};

export const crudSuite: Suite = {
  name: 'crud',
  title: 'S2: CRUD at 75 % reads / 20 % writes / 5 % deletes vs worker count',
  guide:
    'Scenario S2: many users on `/items`, 75 % reads, 20 % writes, 5 % deletes, as workers are added; embedded SQLite ' +
    '(one file shared by all workers, WAL) and PostgreSQL when installed. 404s from reads and deletes of already-deleted ' +
    'items are expected and not counted as errors. Each row starts from the same data and is warmed up. The load ' +
    'generator, drover and the database share this machine\'s 2 cores, so the CPU split says where the time went: cores ' +
    'busy and CPU per request of drover\'s processes, the database server\'s and the load generator\'s, and how often ' +
    'drover\'s threads were preempted while runnable (`droverPreemptionsPerReq`: the cores are oversubscribed) or waited ' +
    'for IO, per request (ADR 0017).',
  estimateS: { tiny: 25, quick: 70, full: 300 },
  async run(ctx: Context) {
    const { users, durationS, workerCounts, postgres } = PROFILES[ctx.profile];
    const backends: ('sqlite' | 'postgres')[] = postgresBinDir() && postgres ? ['sqlite', 'postgres'] : ['sqlite'];
    const rows: Row[] = [];
    for (const backend of backends) {
      const pg = backend === 'postgres' ? await startPostgres('drover_bench') : undefined;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-crud-'));
      try {
        for (const workers of workerCounts) {
          ctx.progress(`${backend}, ${workers} worker(s), ${users} users, ${durationS}s`);
          const env: Record<string, string> = pg ? { DATABASE_URL: pg.url } : { DEMO_SQLITE_PATH: path.join(dir, `items-${workers}.sqlite`) };
          if (pg) await resetItems(pg.url);
          await withRunning(startDrover({ args: ['--workers', String(workers), '--shed-loop-delay', '0ms'], env }), async (d) => {
            // Ids to read and delete come from the seed (the store seeds ~1,000 items).
            const next = (user: number, i: number) => {
              const roll = (user * 7919 + i * 104729) % 100;
              const id = 1 + ((user * 31 + i * 17) % 1000);
              if (roll < 75) return roll % 3 === 0 ? { url: d.url('/items?limit=20') } : { url: d.url(`/items/${id}`) };
              if (roll < 95) return { method: 'POST', url: d.url('/items'), body: JSON.stringify({ name: `item ${user}-${i}`, price: i % 100, tags: ['bench'] }), headers: { 'content-type': 'application/json' } };
              return { method: 'DELETE', url: d.url(`/items/${id}`) };
            };
            const usersFor = (seconds: number) => laneLoop({ next, connections: users, keepAlive: true, durationS: seconds, timeoutMs: 30_000 });
            // Warm-up: JIT, every user's connection, the database pools' connections.
            await usersFor(Math.min(2, durationS / 2));
            const droverPids = tree(d.pid);
            const clocks = { drover: cpuClock(droverPids), db: cpuClock(pg ? tree(pg.pid) : []), client: cpuClock([process.pid]) };
            const switchesBefore = sumSwitches(droverPids);
            const r = await usersFor(durationS);
            const switchesAfter = sumSwitches(droverPids);
            // Every request sent, as the S2 report counted them.
            const requests = r.requests + r.errors;
            const split = Object.fromEntries((['drover', 'db', 'client'] as const).flatMap((k) => {
              const ms = clocks[k]();
              return [[`${k}Cores`, round(ms / 1000 / r.durationS, 2)], [`${k}CpuUsPerReq`, Math.round((ms * 1000) / Math.max(1, requests))]];
            }));
            const s = summarize(r.latency);
            // 404s are expected: deletes and reads of already-deleted seed items.
            const hard = Object.entries(r.failureKinds).filter(([k]) => k !== 'status 404').reduce((a, [, n]) => a + n, 0);
            rows.push({
              config: { backend, workers, users },
              values: {
                requests, reqPerSec: Math.round(requests / r.durationS), meanMs: s.meanMs, medianMs: s.medianMs, p95Ms: s.p95Ms, maxMs: s.maxMs,
                ...split,
                // Preempted while runnable: the cores are oversubscribed (workers + database + client).
                droverPreemptionsPerReq: round((switchesAfter.involuntary - switchesBefore.involuntary) / Math.max(1, requests), 2),
                droverWaitsPerReq: round((switchesAfter.voluntary - switchesBefore.voluntary) / Math.max(1, requests), 2),
                errors: hard, failureKinds: r.failureKinds,
              },
              failed: hard > 0.01 * requests ? `${hard} failed requests` : undefined,
            });
          });
        }
      } finally {
        await pg?.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const derived: Record<string, number> = {};
    for (const b of backends) {
      const at = (w: number) => rows.find((r) => r.config.backend === b && r.config.workers === w)?.values.meanMs as number | undefined;
      const one = at(1);
      const most = at(workerCounts[workerCounts.length - 1]!);
      if (one && most) derived[`${b}: mean at 1 worker / mean at ${workerCounts[workerCounts.length - 1]}`] = round(one / most, 1);
    }
    return { settings: { users, durationSeconds: durationS, mix: '75 % reads, 20 % writes, 5 % deletes', backends }, rows, derived };
  },
};

/** Context switches of these processes' threads so far: waits for IO (voluntary) and preemptions. */
function sumSwitches(pids: number[]): { voluntary: number; involuntary: number } {
  const out = { voluntary: 0, involuntary: 0 };
  for (const pid of pids) {
    try {
      for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        try {
          const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
          out.voluntary += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(st)?.[1] ?? 0);
          out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(st)?.[1] ?? 0);
        } catch {
          /* the thread ended meanwhile */
        }
      }
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Every configuration starts from the seed: empty the table, and the first worker re-seeds it. */
async function resetItems(url: string): Promise<void> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('DROP TABLE IF EXISTS items');
  } finally {
    await c.end();
  }
}
