/**
 * `npm run reliability` — runs every reliability case in sequence, writes
 * bench/results/reliability.json (with the machine's facts) and regenerates docs/reliability.md.
 * Exits 1 if any case is outside its bounds (known drover bugs are reported, not counted).
 *
 *   npm run reliability                        standard profile, 120 s soak (~6 minutes)
 *   npm run reliability -- --quick             shorter phases, 30 s soak (~3 minutes)
 *   npm run reliability -- --soak-seconds 600  a longer soak
 *   npm run reliability -- --case soak         some cases only (repeatable): printed, not written
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { machineFacts } from '../lib/machine';
import { SCENARIOS } from './index';
import { renderReport, type ReliabilityRun } from './report';
import type { CaseResult, Profile } from './types';

const ROOT = path.resolve(__dirname, '..', '..', '..');

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean' }, 'soak-seconds': { type: 'string' }, case: { type: 'string', multiple: true },
        out: { type: 'string' }, 'no-report': { type: 'boolean' }, help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    process.stderr.write(`reliability: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`usage: npm run reliability -- [--quick] [--soak-seconds N] [--case ID ...] [--out FILE] [--no-report]\ncases: ${SCENARIOS.map((s) => s.id).join(', ')}\n`);
    return 0;
  }
  const profile: Profile = values.quick ? 'quick' : 'standard';
  const soakArg = values['soak-seconds'];
  if (soakArg !== undefined && (!/^\d+$/.test(soakArg) || Number(soakArg) < 10)) {
    process.stderr.write(`reliability: --soak-seconds must be a whole number of at least 10, got '${soakArg}'\n`);
    return 2;
  }
  const soakSeconds = soakArg !== undefined ? Number(soakArg) : profile === 'quick' ? 30 : 120;
  const unknown = (values.case ?? []).filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length) {
    process.stderr.write(`reliability: unknown case ${unknown.join(', ')}; cases: ${SCENARIOS.map((s) => s.id).join(', ')}\n`);
    return 2;
  }
  const partial = values.case !== undefined;
  const chosen = partial ? SCENARIOS.filter((s) => values.case!.includes(s.id)) : SCENARIOS;
  const start = machineFacts();
  const startedAt = Date.now();
  const opts = { profile, soakSeconds };
  let left = chosen.reduce((a, s) => a + s.estimateS(opts), 0);
  process.stdout.write(`drover reliability (${profile}, soak ${soakSeconds} s) on ${start.cores} cores, ${start.cpuModel}, Node ${start.node}, load ${start.loadAvg1m}; ~${Math.round(left)} s\n`);

  const results: CaseResult[] = [];
  for (const [i, s] of chosen.entries()) {
    process.stdout.write(`[${i + 1}/${chosen.length}] ${s.id}: ${s.title}\n`);
    const progress = (msg: string) => process.stdout.write(`    ${msg}\n`);
    let r: CaseResult;
    const t0 = Date.now();
    try {
      r = await s.run({ ...opts, progress });
    } catch (err) {
      r = {
        id: s.id, case: s.title, group: s.group, load: null, faults: '—', failed: null, bound: null, recoveryMs: null, details: {}, checks: [], notes: [],
        pass: false, error: (err as Error).stack ?? String(err), durationS: Math.round((Date.now() - t0) / 100) / 10,
      };
    }
    results.push(r);
    left -= s.estimateS(opts);
    const head = r.error ? 'ERROR' : r.pass ? 'pass' : 'FAIL';
    const figures = [r.load ? `${r.load.reqPerSec} req/s` : '', r.failed !== null ? `failed ${r.failed}${r.bound !== null ? ` (bound ${r.bound})` : ''}` : '', r.recoveryMs !== null ? `recovery ${r.recoveryMs} ms` : '']
      .filter(Boolean)
      .join(', ');
    process.stdout.write(`    ${head} in ${r.durationS} s${figures ? `: ${figures}` : ''} (~${Math.max(0, Math.round(left))} s left)\n`);
    for (const c of r.checks.filter((x) => !x.ok)) process.stdout.write(`    ${c.knownBug ? 'known bug' : 'FAILED'}: ${c.name}: ${c.value ?? ''} (bound ${c.limit ?? '—'})\n`);
    if (r.error) process.stdout.write(`    ${r.error.split('\n').slice(0, 4).join('\n    ')}\n`);
  }

  const run: ReliabilityRun = {
    command: `npm run reliability${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    profile,
    soakSeconds,
    startedAt: new Date(startedAt).toISOString(),
    durationS: Math.round((Date.now() - startedAt) / 1000),
    machine: { start, end: machineFacts() },
    results,
  };
  const out = values.out ? path.resolve(values.out) : partial ? undefined : path.join(ROOT, 'bench', 'results', 'reliability.json');
  if (out) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(run, null, 2) + '\n');
    process.stdout.write(`results: ${path.relative(ROOT, out)}\n`);
  }
  if (!partial && !values['no-report']) {
    const doc = path.join(ROOT, 'docs', 'reliability.md');
    fs.writeFileSync(doc, renderReport(run));
    process.stdout.write(`report: ${path.relative(ROOT, doc)}\n`);
  }
  const failing = results.filter((r) => !r.pass);
  process.stdout.write(failing.length ? `${failing.length} case(s) outside their bounds: ${failing.map((r) => r.id).join(', ')}\n` : `all ${results.length} cases within their bounds\n`);
  return failing.length ? 1 : 0;
}

// Ctrl-C: exit through process 'exit', where the harness kills every drover it started.
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`reliability: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
