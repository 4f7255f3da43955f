import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startDrover } from '../../test/helpers/drover';
import { postgresBinDir, startPostgres } from '../../test/helpers/postgres';
import { summarize } from '../lib/stats';
import type { Context, Row, Suite } from '../lib/suite';
import { runUsers } from '../lib/users';

/**
 * S2: a CRUD service under many users, 75 % reads / 20 % writes / 5 % deletes, as workers are
 * added. Embedded SQLite (one file shared by all workers) always; PostgreSQL too when its
 * binaries are installed (a throwaway cluster started for the run).
 */
export const crudSuite: Suite = {
  name: 'crud',
  title: 'S2: CRUD at 75 % reads / 20 % writes / 5 % deletes vs worker count',
  estimateS: { tiny: 25, quick: 70, full: 300 },
  async run(ctx: Context) {
    const p = ctx.profile;
    const users = p === 'tiny' ? 10 : p === 'quick' ? 100 : 500;
    const durationS = p === 'tiny' ? 2 : p === 'quick' ? 6 : 30;
    const workerCounts = p === 'full' ? [1, 2, 4, 8] : [1, 2, 4];
    const backends: ('sqlite' | 'postgres')[] = postgresBinDir() && p !== 'tiny' ? ['sqlite', 'postgres'] : ['sqlite'];
    const rows: Row[] = [];
    for (const backend of backends) {
      const pg = backend === 'postgres' ? await startPostgres('drover_bench') : undefined;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-crud-'));
      try {
        for (const workers of workerCounts) {
          ctx.progress(`${backend}, ${workers} worker(s), ${users} users, ${durationS}s`);
          const env: Record<string, string> = pg ? { DATABASE_URL: pg.url } : { DEMO_SQLITE_PATH: path.join(dir, `items-${workers}.sqlite`) };
          const d = await startDrover({ args: ['--workers', String(workers), '--shed-loop-delay', '0ms'], env });
          try {
            // Ids to read and delete come from the seed (the store seeds ~1,000 items).
            const r = await runUsers({
              users, durationS, timeoutMs: 30_000,
              request: (user, i) => {
                const roll = (user * 7919 + i * 104729) % 100;
                const id = 1 + ((user * 31 + i * 17) % 1000);
                if (roll < 75) return roll % 3 === 0 ? { method: 'GET', url: d.url('/items?limit=20') } : { method: 'GET', url: d.url(`/items/${id}`) };
                if (roll < 95) return { method: 'POST', url: d.url('/items'), body: JSON.stringify({ name: `item ${user}-${i}`, price: i % 100, tags: ['bench'] }) };
                return { method: 'DELETE', url: d.url(`/items/${id}`) };
              },
            });
            const s = summarize(r.latency);
            // 404s are expected: deletes and reads of already-deleted seed items.
            const hard = Object.entries(r.failureKinds).filter(([k]) => k !== 'status 404').reduce((a, [, n]) => a + n, 0);
            rows.push({
              config: { backend, workers, users },
              values: { requests: r.requests, reqPerSec: Math.round(r.requests / r.durationS), meanMs: s.meanMs, medianMs: s.medianMs, p95Ms: s.p95Ms, maxMs: s.maxMs, errors: hard, failureKinds: r.failureKinds },
              failed: hard > 0.01 * r.requests ? `${hard} failed requests` : undefined,
            });
          } finally {
            await d.stop();
          }
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
      if (one && most) derived[`${b}: mean at 1 worker / mean at ${workerCounts[workerCounts.length - 1]}`] = Math.round((one / most) * 10) / 10;
    }
    return { settings: { users, durationSeconds: durationS, mix: '75 % reads, 20 % writes, 5 % deletes', backends }, rows, derived };
  },
};
