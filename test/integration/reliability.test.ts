/**
 * Reliability and abuse (issue "Reliability and abuse suite"): every case of bench/reliability/,
 * short profile, each bound asserted as its own subtest. The same functions produce the figures
 * of docs/reliability.md through `npm run reliability`.
 *
 * The soak runs 2 minutes when CI is set, DROVER_SOAK_SECONDS seconds when given, else 30 s.
 * A check that fails because of a known drover bug is a `todo` subtest naming the bug, so the
 * suite stays green and the bug stays visible.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SCENARIOS } from '../../bench/reliability/index';
import type { CaseResult, ScenarioOptions } from '../../bench/reliability/types';

const soakSeconds = Number(process.env.DROVER_SOAK_SECONDS) || (process.env.CI ? 120 : 30);
const base: Omit<ScenarioOptions, 'progress'> = { profile: 'quick', soakSeconds };

function figures(r: CaseResult): string {
  const parts = [
    r.load ? `load ${r.load.reqPerSec} req/s (target ${r.load.targetPerSec}), ${r.load.requests} requests` : '',
    r.failed !== null ? `failed ${r.failed}${r.bound !== null ? ` (bound ${r.bound})` : ''}${r.load && r.failed ? ` ${JSON.stringify(r.load.errors)}` : ''}` : '',
    r.recoveryMs !== null ? `recovery ${r.recoveryMs} ms${r.recoveryGoalMs ? ` (goal ${r.recoveryGoalMs} ms)` : ''}` : '',
    r.inputs !== undefined ? `${r.inputs} inputs` : '',
  ];
  return parts.filter(Boolean).join('; ');
}

describe('reliability and abuse: faults under load, hostile input, control plane, soak', () => {
  for (const s of SCENARIOS) {
    // Generous: the estimate is for an idle machine; this one has 2 shared cores.
    const timeout = (s.estimateS(base) * 4 + 60) * 1000;
    it(s.title, { timeout }, async (t) => {
      const r = await s.run({ ...base, progress: (msg) => t.diagnostic(msg) });
      t.diagnostic(`${r.id} in ${r.durationS} s: ${figures(r)}`);
      for (const note of r.notes) t.diagnostic(note);
      for (const c of r.checks) {
        await t.test(c.name, c.knownBug ? { todo: c.knownBug } : {}, () => {
          assert.ok(c.ok, `${c.name}: measured ${c.value ?? '?'}${c.limit !== undefined ? `, bound ${c.limit}` : ''}`);
        });
      }
      assert.ok(r.checks.length > 0, 'the case checked something');
    });
  }
});
