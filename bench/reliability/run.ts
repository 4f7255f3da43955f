/**
 * `npm run reliability` (`node dist/bench/run.js reliability`): runs the reliability cases
 * (test/integration/reliability/*.test.ts, node:test files) in one `node --test`, writes
 * bench/results/reliability.json (with the machine's facts) and regenerates docs/reliability.md from
 * the results the cases append to a file. Exits 1 if any case is outside its bounds (known drover
 * bugs are reported, not counted).
 *
 *   npm run reliability                        standard profile, 120 s soak (~6 minutes)
 *   npm run reliability -- --quick             shorter phases, 30 s soak (~3 minutes)
 *   npm run reliability -- --soak-seconds 600  a longer soak
 *   npm run reliability -- --case soak         some cases only (repeatable): printed, not written
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { machineFacts } from '../lib/machine';
import { CASES, noResult, type CaseResult, type Profile } from './cases';
import { renderReport, type ReliabilityRun } from './report';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** The soak's loaded phase per profile, unless --soak-seconds says otherwise. */
const SOAK_SECONDS: Record<Profile, number> = { quick: 30, standard: 120 };

export const RELIABILITY_USAGE = `usage: npm run reliability -- [--quick] [--soak-seconds N] [--case ID ...] [--out FILE] [--no-report]\ncases: ${CASES.map((s) => s.id).join(', ')}\n`;

export async function runReliability(values: { quick?: boolean; 'soak-seconds'?: string; case?: string[]; out?: string; 'no-report'?: boolean }, args: string[]): Promise<number> {
  const profile: Profile = values.quick ? 'quick' : 'standard';
  const soakArg = values['soak-seconds'];
  if (soakArg !== undefined && (!/^\d+$/.test(soakArg) || Number(soakArg) < 10)) {
    process.stderr.write(`reliability: --soak-seconds must be a whole number of at least 10, got '${soakArg}'\n`);
    return 2;
  }
  const soakSeconds = soakArg !== undefined ? Number(soakArg) : SOAK_SECONDS[profile];
  const unknown = (values.case ?? []).filter((id) => !CASES.some((s) => s.id === id));
  if (unknown.length) {
    process.stderr.write(`reliability: unknown case ${unknown.join(', ')}; cases: ${CASES.map((s) => s.id).join(', ')}\n`);
    return 2;
  }
  const partial = values.case !== undefined;
  const chosen = partial ? CASES.filter((s) => values.case!.includes(s.id)) : CASES;
  const start = machineFacts();
  const startedAt = Date.now();
  const left = chosen.reduce((a, s) => a + s.estimateS({ profile, soakSeconds }), 0);
  process.stdout.write(`drover reliability (${profile}, soak ${soakSeconds} s) on ${start.cores} cores, ${start.cpuModel}, Node ${start.node}, load ${start.loadAvg1m}; ~${Math.round(left)} s\n`);

  const resultsFile = path.join(os.tmpdir(), `drover-reliability-${process.pid}.jsonl`);
  const dir = path.join(ROOT, 'dist', 'test', 'integration', 'reliability');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.js')).map((f) => path.join(dir, f));
  const env: NodeJS.ProcessEnv = { ...process.env, DROVER_RELIABILITY_PROFILE: profile, DROVER_SOAK_SECONDS: String(soakSeconds), DROVER_RELIABILITY_RESULTS: resultsFile };
  if (partial) env.DROVER_RELIABILITY_CASES = values.case!.join(',');
  const code = await new Promise<number | null>((resolve) => {
    spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit', env }).on('exit', resolve);
  });
  const written = fs.existsSync(resultsFile) ? fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as CaseResult) : [];
  fs.rmSync(resultsFile, { force: true });
  const results = chosen.map((s) => written.find((r) => r.id === s.id) ?? noResult(s.id, 'no result: the test was cancelled or timed out (see its output above)', 0));

  const run: ReliabilityRun = {
    command: `npm run reliability${args.length ? ` -- ${args.join(' ')}` : ''}`,
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
  return failing.length || code !== 0 ? 1 : 0;
}
