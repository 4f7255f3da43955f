/**
 * Renders docs/reliability.md from bench/results/reliability.json. Never edit the output by hand:
 * rerun `npm run reliability` (or `node dist/bench/reliability/report.js` to re-render a result).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Machine } from '../lib/machine';
import { esc, mdTable } from '../lib/markdown';
import type { CaseResult, Profile } from './cases';

export interface ReliabilityRun {
  command: string;
  profile: Profile;
  soakSeconds: number;
  startedAt: string;
  durationS: number;
  machine: { start: Machine; end: Machine };
  results: CaseResult[];
}

const n = (x: number) => x.toLocaleString('en-US');

function verdict(r: CaseResult): string {
  if (r.error) return '**error**';
  if (!r.pass) return '**FAIL**';
  return r.checks.some((c) => c.knownBug && !c.ok) ? 'pass, with a known bug' : 'pass';
}

function loadCell(r: CaseResult): string {
  if (!r.load) return '—';
  return `${n(r.load.reqPerSec)} req/s (target ${n(r.load.targetPerSec)}), ${n(r.load.requests)} requests`;
}

function recoveryCell(r: CaseResult): string {
  if (r.recoveryMs === null) return '—';
  return `${n(r.recoveryMs)} ms${r.recoveryGoalMs ? ` (goal ${n(r.recoveryGoalMs)} ms: ${r.recoveryMs <= r.recoveryGoalMs ? 'met' : 'missed'})` : ''}`;
}

function summary(results: CaseResult[]): string[] {
  return mdTable(
    ['case', 'load held', 'faults injected', 'failed requests', 'bound', 'recovery', 'bad inputs tried', 'result'],
    results.map((r) => [
      `[${esc(r.case)}](#${r.id})`, loadCell(r), esc(r.faults), r.failed === null ? '—' : n(r.failed), r.bound === null ? '—' : n(r.bound),
      recoveryCell(r), r.inputs === undefined ? '—' : n(r.inputs), verdict(r),
    ]),
  );
}

function caseSection(r: CaseResult): string[] {
  const out = [`### ${r.case}`, '', `<a id="${r.id}"></a>\`${r.id}\` — ${verdict(r)} in ${r.durationS} s.`, ''];
  if (r.error) out.push('```', r.error, '```', '');
  for (const note of r.notes) out.push(note, '');
  const phases = r.load?.phases;
  if (phases) {
    out.push(
      ...mdTable(['load phase', 'answered', 'failed', 'req/s', 'median ms', 'p99 ms', 'max ms'], phases.map((p) => [esc(p.name), n(p.ok), n(p.failed), n(p.reqPerSec), p.medianMs, p.p99Ms, p.maxMs])),
      '', 'Latency is counted from the time each request was due (its lane\'s pace), so time spent waiting behind a fault is included.', '',
    );
  }
  const result = (x: { ok: boolean; knownBug?: string }) => (x.ok ? 'ok' : x.knownBug ? 'known bug' : '**FAIL**');
  if (r.rows) {
    out.push(...mdTable(
      ['input', 'expected', 'got', 'ms', 'worker alive', 'concurrent /ping', 'clean', 'result'],
      r.rows.map((row) => [
        `${esc(row.input)}${row.note ? ` (${esc(row.note)})` : ''}`, row.expected, row.got, row.ms, row.workersAlive ? 'yes' : '**no**',
        row.pingOk ? '200' : '**failed**', row.clean ? 'yes' : '**no**', result(row),
      ]),
    ));
  } else {
    out.push(...mdTable(['check', 'measured', 'bound', 'result'], r.checks.map((c) => [esc(c.name), esc(String(c.value ?? '')), esc(String(c.limit ?? '')), result(c)])));
  }
  out.push('');
  return out;
}

interface SoakDetails {
  seconds: number;
  warmupMs: number;
  fdsIdle: number;
  fdsEnd: number;
  slopes: Record<string, number>;
  bounds: { nonHeapMbPerMin: number | null; heapCeilingMb: number; rssMbPerMin: number | null };
  samples: { t: number; rssMb: number; heapMb: number; heapTotalMb: number; fds: number; threads: number }[];
}

function soakSection(r: CaseResult | undefined): string[] {
  if (!r || !r.details.slopes) return [];
  const d = r.details as unknown as SoakDetails;
  const steady = d.samples.filter((x) => x.t >= d.warmupMs);
  const first = steady[0];
  const last = steady[steady.length - 1];
  const v = (x: SoakSample | undefined, f: (x: SoakSample) => number) => (x ? Math.round(f(x) * 10) / 10 : '');
  type SoakSample = SoakDetails['samples'][number];
  const row = (what: string, f: (x: SoakSample) => number, slope: number | undefined, unit: string, bound: string) => [what, v(first, f), v(last, f), `${slope ?? ''} ${unit}/min`, bound];
  return [
    '## Soak: the primary over time',
    '',
    `${d.seconds} s, sampled every 2 s; slopes are least-squares fits over the second half (from ${d.warmupMs / 1000} s). ` +
      "RSS is split into V8's heap reservation (which grows while the primary warms up, then plateaus) and everything else (where native leaks show).",
    '',
    ...mdTable(['series', 'first sample of the half', 'last sample', 'slope', 'bound'], [
      row('resident memory (VmRSS, MB)', (x) => x.rssMb, d.slopes.rssMbPerMin, 'MB', d.bounds.rssMbPerMin !== null ? `≤ ${d.bounds.rssMbPerMin} MB/min` : 'reported (bounded from a 240 s soak on)'),
      row("V8 heap reservation (drover_primary_nodejs_heap_size_total_bytes, MB)", (x) => x.heapTotalMb, d.slopes.heapTotalMbPerMin, 'MB', `peak ≤ ${d.bounds.heapCeilingMb} MB`),
      row('RSS outside the V8 heap (MB; slope over 10 s highs)', (x) => x.rssMb - x.heapTotalMb, d.slopes.nonHeapMbPerMin, 'MB', d.bounds.nonHeapMbPerMin !== null ? `≤ ${d.bounds.nonHeapMbPerMin} MB/min` : 'growth ≤ 32 MB (slope bounded from a 90 s soak on)'),
      row('V8 heap used (MB)', (x) => x.heapMb, d.slopes.heapUsedMbPerMin, 'MB', 'reported'),
      row('open descriptors (/proc/<pid>/fd)', (x) => x.fds, d.slopes.fdsPerMin, 'fds', `back to ${d.fdsIdle} ± 5 after the load: ${d.fdsEnd}`),
      row('threads', (x) => x.threads, d.slopes.threadsPerMin, 'threads', 'unchanged'),
    ]),
    '',
  ];
}

export function renderReport(run: ReliabilityRun): string {
  const m = run.machine.start;
  const failed = run.results.filter((r) => !r.pass);
  const bugs = run.results.flatMap((r) => [...r.checks.filter((c) => c.knownBug && !c.ok).map((c) => c.knownBug!), ...(r.rows ?? []).filter((x) => x.knownBug && !x.ok).map((x) => x.knownBug!)]);
  const uniqueBugs = [...new Set(bugs)];
  return [
    '# drover reliability',
    '',
    '<!-- Generated by bench/reliability/report.ts from bench/results/reliability.json. Do not edit: run `npm run reliability`. -->',
    '',
    `Generated by \`${run.command}\` (profile \`${run.profile}\`, soak ${run.soakSeconds} s) on ${run.startedAt}: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ` +
      `Node ${m.node}, ${m.platform}; load average ${m.loadAvg1m} at the start and ${run.machine.end.loadAvg1m} at the end; ${Math.round(run.durationS)} s in all. ` +
      'This machine has 2 cores and is shared: absolute times (boot, recovery) depend on what else runs; the bounds are what the suite asserts.',
    '',
    `**${run.results.length - failed.length} of ${run.results.length} cases within their bounds.**${uniqueBugs.length ? ` ${uniqueBugs.length} known drover bug(s) listed at the end (their checks are reported, not counted as failures).` : ''}`,
    '',
    'Every case starts its own drover on free ports with real processes, real signals and real HTTP. The load is a paced client ' +
      '(`PacedLoad` in `test/helpers/paced-load.ts`): a fixed number of lanes, each on a keep-alive connection, a new connection per request, or `fetch`, ' +
      'each sending at its own fixed pace once its previous request has answered; "load held" is what was achieved, not what was asked. ' +
      'A request fails when it gets no answer or a 5xx. The cases are node:test tests (`test/integration/reliability/`), each bound a subtest; `npm test` runs them with a shorter soak.',
    '',
    '## Summary',
    '',
    ...summary(run.results),
    '',
    '"bound" is the most failures the case allows: for a killed worker, what the client had exposed to it at that instant (requests in flight on its connections, requests on new connections not yet attributed to a worker, idle keep-alive connections to it).',
    '',
    '## Cases',
    '',
    ...run.results.flatMap(caseSection),
    ...soakSection(run.results.find((r) => r.id === 'soak')),
    ...(uniqueBugs.length ? ['## Known drover bugs found by this suite', '', ...uniqueBugs.map((b) => `- ${b}`), ''] : []),
  ].join('\n');
}

export function writeReport(resultsFile: string, outFile: string): string {
  const run = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as ReliabilityRun;
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, renderReport(run));
  return outFile;
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..', '..');
  process.stdout.write(`wrote ${writeReport(path.join(root, 'bench', 'results', 'reliability.json'), path.join(root, 'docs', 'reliability.md'))}\n`);
}
