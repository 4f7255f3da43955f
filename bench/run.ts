/**
 * The bench's one runner.
 *
 * `npm run bench` — runs the benchmark suites, writes raw results to bench/results/<suite>.json
 * (with machine facts and the exact settings) and regenerates docs/benchmarks.md from every
 * results file. Numbers in the docs come only from here.
 *
 *   npm run bench                      quick profile, every suite (a few minutes)
 *   npm run bench -- --full            longer runs, more configurations
 *   npm run bench -- --suite metrics   one suite (repeatable)
 *   npm run bench -- --tiny            seconds per suite: proves the bench works (used by a test)
 *   --out DIR                          results directory (default bench/results)
 *   --no-report                        do not regenerate docs/benchmarks.md
 *
 * `npm run reliability` is `node dist/bench/run.js reliability [...]`: see bench/reliability/run.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { findProgram, machineFacts } from './lib/machine';
import type { Profile, SuiteResult } from './lib/suite';
import { RELIABILITY_USAGE, runReliability } from './reliability/run';
import { writeReport } from './report';
import { SUITES } from './suites';

const ROOT = path.resolve(__dirname, '..', '..');

type Values = { [k: string]: string | boolean | string[] | undefined };

/** The two commands: their own flags, beside the shared --out, --no-report and --help. */
const COMMANDS: Record<'bench' | 'reliability', { options: ParseArgsConfig['options']; usage: () => string; run: (values: Values, args: string[]) => Promise<number> }> = {
  bench: {
    options: { full: { type: 'boolean' }, tiny: { type: 'boolean' }, suite: { type: 'string', multiple: true } },
    usage: () => `usage: npm run bench -- [--full | --tiny] [--suite NAME ...] [--out DIR] [--no-report]\nsuites: ${SUITES.map((s) => s.name).join(', ')}\n`,
    run: (values) => runSuites(values as { full?: boolean; tiny?: boolean; suite?: string[]; out?: string; 'no-report'?: boolean }),
  },
  reliability: { options: { quick: { type: 'boolean' }, 'soak-seconds': { type: 'string' }, case: { type: 'string', multiple: true } }, usage: () => RELIABILITY_USAGE, run: runReliability },
};

async function main(): Promise<number> {
  const name = process.argv[2] === 'reliability' ? 'reliability' : 'bench';
  const args = process.argv.slice(name === 'reliability' ? 3 : 2);
  const command = COMMANDS[name];
  let values: Values;
  try {
    ({ values } = parseArgs({ args, options: { ...command.options, out: { type: 'string' }, 'no-report': { type: 'boolean' }, help: { type: 'boolean' } } }));
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(command.usage());
    return 0;
  }
  return command.run(values, args);
}

async function runSuites(values: { full?: boolean; tiny?: boolean; suite?: string[]; out?: string; 'no-report'?: boolean }): Promise<number> {
  const profile: Profile = values.full ? 'full' : values.tiny ? 'tiny' : 'quick';
  const unknown = (values.suite ?? []).filter((n) => !SUITES.some((s) => s.name === n));
  if (unknown.length) {
    process.stderr.write(`bench: unknown suite ${unknown.join(', ')}; suites: ${SUITES.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const chosen = values.suite ? SUITES.filter((s) => values.suite!.includes(s.name)) : SUITES;
  // A suite that cannot run fails the whole command up front, rather than as a row after minutes.
  const missing = chosen.flatMap((s) => (s.requires ?? []).filter((r) => !findProgram(r.program)).map((r) => `suite ${s.name} needs ${r.program} (Debian package ${r.debian})`));
  if (missing.length) {
    process.stderr.write(`bench: ${missing.join('; ')}: not found. Install it (apt-get install ...) or leave the suite out with --suite.\n`);
    return 2;
  }
  const outDir = path.resolve(values.out ?? path.join(ROOT, 'bench', 'results'));
  fs.mkdirSync(outDir, { recursive: true });
  const machine = machineFacts();
  process.stdout.write(`drover bench (${profile}) on ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAvg1m}\n`);

  let remaining = chosen.reduce((a, s) => a + s.estimateS[profile], 0);
  let failures = 0;
  for (const suite of chosen) {
    const started = Date.now();
    const ctx = {
      profile,
      progress: (msg: string) => {
        const left = Math.max(0, remaining - (Date.now() - started) / 1000);
        process.stdout.write(`  [${suite.name}] ${msg}  (~${Math.round(left)}s left)\n`);
      },
    };
    process.stdout.write(`suite ${suite.name}: ${suite.title}\n`);
    // A suite that throws is one failed row.
    const r = await suite.run(ctx).catch((err: Error) => ({ settings: {}, rows: [{ config: {}, values: {}, failed: err.stack ?? String(err) }], derived: {} }));
    const result: SuiteResult = { suite: suite.name, title: suite.title, profile, machine: machineFacts(), ...r };
    remaining -= suite.estimateS[profile];
    const failed = result.rows.filter((r) => r.failed);
    failures += failed.length;
    for (const f of failed) process.stdout.write(`  FAILED ${JSON.stringify(f.config)}: ${f.failed}\n`);
    fs.writeFileSync(path.join(outDir, `${suite.name}.json`), JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`  done in ${Math.round((Date.now() - started) / 1000)}s: ${JSON.stringify(result.derived)}\n`);
  }
  if (!values['no-report']) {
    const file = await writeReport(outDir, path.join(ROOT, 'docs', 'benchmarks.md'));
    process.stdout.write(`report: ${path.relative(ROOT, file)}\n`);
  }
  if (failures) process.stdout.write(`${failures} configuration(s) failed\n`);
  return failures ? 1 : 0;
}

// Ctrl-C: exit through process 'exit', where the harness kills every server and drover it started.
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
