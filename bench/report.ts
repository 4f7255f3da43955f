/**
 * Generates docs/benchmarks.md from bench/results/*.json. Never edit the output by hand: rerun
 * `npm run bench` (or `node dist/bench/report.js` to re-render existing results).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { workersChart } from './chart';
import { mdTable } from './lib/markdown';
import { findRow, type Row, type SuiteResult } from './lib/suite';
import { SUITES } from './suites';

/** Column names, where a value's key is not one already. */
const LABELS: Record<string, string> = {
  p50Ms: 'p50 ms', p95Ms: 'p95 ms', p99Ms: 'p99 ms', maxMs: 'max ms', reqPerSec: 'req/s', seriesTotal: 'series (total)',
  seriesPerWorker: 'series / worker', requestMetrics: 'request metrics', smallCount: 'small n', smallMin: 'min', smallMedian: 'median',
  smallMean: 'mean', smallP90: 'p90', smallP95: 'p95', smallP99: 'p99', smallMax: 'max', closedLoopP95: 'closed-loop p95',
  baselineP95: 'no-load p95', baselineMax: 'no-load max', largeCount: 'large n', largeMedian: 'large median', largeP95: 'large p95',
  largeMax: 'large max', neverCompleted: 'never completed', small: 'small request', pingP95: '/ping p95', droverCores: 'drover cores',
  dbCores: 'db cores', clientCores: 'client cores', droverCpuUsPerReq: 'drover CPU µs / req', dbCpuUsPerReq: 'db CPU µs / req',
  clientCpuUsPerReq: 'client CPU µs / req', droverPreemptionsPerReq: 'drover preemptions / req', droverWaitsPerReq: 'drover IO waits / req',
  pingBaselineP95: '/ping no-load p95', slowPercent: '% over 100 ms', over100ms: 'over 100 ms', bigCount: 'big n', big: 'big work',
  target: 'probe target', perSecond: 'answers per second', worstSecond: 'worst second', bestSecond: 'best second', failedProbes: 'failed probes',
  bigResponses: 'big responses', workerInstrPerReq: 'worker instr / req', primaryInstrPerReq: 'primary instr / req',
  totalInstrPerReq: 'all instr / req', workerInstrPerSecondIdle: 'worker instr / s (periodic)',
  primaryInstrPerSecondIdle: 'primary instr / s (periodic)', wallSeconds: 'wall s (under callgrind)',
  workerWindows: 'worker instr / req, each window', instrPerReq: 'instr / req', windows: 'instr / req, each window',
  instrPerSecondIdle: 'instr / s (periodic)', path: 'request path', pair: 'pair (b / a)', rep: 'repetition', orientation: 'start order',
  aCpuUsPerRequest: 'a CPU µs / req', bCpuUsPerRequest: 'b CPU µs / req', ratio: 'b / a', failurePercent: 'failure %', failureKinds: 'failure kinds',
  medianMs: 'median ms', meanMs: 'mean ms',
};

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : String(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function table(rows: Row[]): string {
  const configKeys = [...new Set(rows.flatMap((r) => Object.keys(r.config)))].filter((k) => k !== 'measure');
  const valueKeys = [...new Set(rows.flatMap((r) => Object.keys(r.values)))];
  const anyFailed = rows.some((r) => r.failed);
  const head = [...configKeys, ...valueKeys].map((k) => LABELS[k] ?? k);
  const cells = (r: Row) => [...configKeys.map((k) => cell(r.config[k])), ...valueKeys.map((k) => cell(r.values[k]))];
  return mdTable(anyFailed ? [...head, 'failed'] : head, rows.map((r) => (anyFailed ? [...cells(r), r.failed ?? ''] : cells(r)))).join('\n');
}

function section(r: SuiteResult, chart?: string): string {
  const m = r.machine;
  const groups = new Map<string, Row[]>();
  for (const row of r.rows) {
    const key = String(row.config.measure ?? '');
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const parts = [
    `## ${r.title}`,
    '',
    SUITES.find((s) => s.name === r.suite)?.guide ?? '',
    '',
    `Run: ${m.date}, profile \`${r.profile}\`, ${m.cores} cores (${m.cpuModel}), Node ${m.node}, ` +
      `load average ${m.loadAvg1m} at the end. Settings: \`${JSON.stringify(r.settings)}\`.`,
    '',
    ...(chart ? [`![${r.title}](${chart})`, ''] : []),
  ];
  for (const [measure, rows] of groups) {
    if (measure) parts.push(`**${measure}**`, '');
    parts.push(table(rows), '');
  }
  if (Object.keys(r.derived).length) {
    parts.push('Derived from the rows above:', '');
    for (const [k, v] of Object.entries(r.derived)) parts.push(`- \`${k}\`: ${cell(v)}`);
    parts.push('');
  }
  return parts.join('\n');
}

/** One line of the opening table: a traffic shape at a worker count, drover against node:cluster. */
interface Headline {
  shape: string;
  workers: number;
  drover: number;
  cluster: number;
  /** Share of small requests slower than 100 ms (they waited behind big work), %. */
  droverSlow?: number;
  clusterSlow?: number;
  run: string;
}

const runOf = (r: SuiteResult) => `${r.suite}, ${r.machine.date.slice(0, 10)}, ${r.profile}`;

/** The opening table, from the workers and proxy suites' rows (p95 of the small requests, ms). */
function headlines(results: SuiteResult[]): Headline[] {
  const out: Headline[] = [];
  const workers = results.find((r) => r.suite === 'workers');
  if (workers) {
    const shapes: [string, Record<string, unknown>, Record<string, unknown>][] = [
      ['new connections, 400 ms blocks looping', { big: 'block', client: 'new-connection', peer: 'drover least-busy' }, { big: 'block', client: 'new-connection', peer: 'node:cluster' }],
      ['new connections, S0 23 MB responses looping', { big: 's0', client: 'new-connection', peer: 'drover least-busy' }, { big: 's0', client: 'new-connection', peer: 'node:cluster' }],
      ['keep-alive direct, S0 looping, naive handlers', { big: 's0', client: 'keep-alive', peer: 'drover least-busy', mode: 'naive' }, { big: 's0', client: 'keep-alive', peer: 'node:cluster', mode: 'naive' }],
      ['keep-alive direct, S0 looping, drover streamJson vs naive', { big: 's0', client: 'keep-alive', peer: 'drover least-busy', mode: 'stream' }, { big: 's0', client: 'keep-alive', peer: 'node:cluster', mode: 'naive' }],
      ['new connections, S3 2 KB bodies to /ingest, drover offload vs naive', { big: 's3', peer: 'drover least-busy', mode: 'offload' }, { big: 's3', peer: 'node:cluster', mode: 'naive' }],
    ];
    const ws = [...new Set(workers.rows.map((r) => r.config.workers as number))].sort((a, b) => a - b);
    for (const [shape, d, c] of shapes) {
      for (const w of ws) {
        const dr = findRow(workers.rows, { ...d, workers: w });
        const cr = findRow(workers.rows, { ...c, workers: w });
        if (dr && cr) {
          out.push({
            shape, workers: w, drover: dr.values.smallP95 as number, cluster: cr.values.smallP95 as number,
            droverSlow: dr.values.slowPercent as number | undefined, clusterSlow: cr.values.slowPercent as number | undefined, run: runOf(workers),
          });
        }
      }
    }
  }
  const proxy = results.find((r) => r.suite === 'proxy');
  if (proxy) {
    const keyOf = (r: Row) => `${r.config.front}|${r.config.big}|${r.config.rate}|${r.config.workers}`;
    const keys = [...new Set(proxy.rows.filter((r) => !r.failed && r.config.peer).map(keyOf))];
    for (const key of keys) {
      const [front, big, rate, w] = key.split('|');
      const of = (peer: string) => proxy.rows.filter((r) => !r.failed && keyOf(r) === key && r.config.peer === peer);
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
      const slow = (rs: Row[]) => Math.round((rs.reduce((a, r) => a + (r.values.over100ms as number), 0) / Math.max(1, rs.reduce((a, r) => a + (r.values.smallCount as number), 0))) * 1000) / 10;
      const d = of('drover least-busy');
      const c = of('node:cluster');
      if (d.length && c.length) {
        out.push({
          shape: `behind ${front}, ${rate} small/s, ${big} looping (median p95 of ${d.length} rounds)`, workers: Number(w),
          drover: median(d.map((r) => r.values.smallP95 as number)), cluster: median(c.map((r) => r.values.smallP95 as number)),
          droverSlow: slow(d), clusterSlow: slow(c), run: runOf(proxy),
        });
      }
    }
  }
  return out;
}

function headlineTable(rows: Headline[]): string[] {
  if (!rows.length) return [];
  return [
    '## drover against bare node:cluster, at a glance',
    '',
    'p95 of small requests while one client keeps big work in flight, the same demo app under each, in one run (details',
    'and every percentile in the sections below). The ratio is node:cluster\'s p95 over drover\'s: above 1, drover\'s',
    'small requests were faster. p95 alone can mislead: with one 400 ms block at a time and 20 small requests per block,',
    'the one request that waits is exactly 5 %, so the share of small requests slower than 100 ms is shown beside it.',
    'Single runs on this shared 2-core machine move by tens of percent; a ratio near 1 means "the same".',
    '',
    ...mdTable(
      ['traffic shape', 'workers', 'drover p95 ms', 'node:cluster p95 ms', 'node:cluster / drover', '% over 100 ms, drover / node:cluster', 'run'],
      rows.map((h) => [h.shape, h.workers, h.drover, h.cluster, Math.round((h.cluster / h.drover) * 100) / 100, `${h.droverSlow ?? ''} / ${h.clusterSlow ?? ''}`, h.run]),
    ),
    '',
  ];
}

export async function writeReport(resultsDir: string, outFile: string): Promise<string> {
  const order = SUITES.map((s) => s.name);
  const results = fs
    .readdirSync(resultsDir)
    // Only benchmark suites: other generated results (reliability.json) live in the same folder.
    .filter((f) => f.endsWith('.json') && order.includes(f.slice(0, -5)))
    .map((f) => JSON.parse(fs.readFileSync(path.join(resultsDir, f), 'utf8')) as SuiteResult);
  results.sort((a, b) => order.indexOf(a.suite) - order.indexOf(b.suite));
  // The headline chart, as an SVG file beside the report.
  let chart: string | undefined;
  const workers = results.find((r) => r.suite === 'workers');
  if (workers) {
    chart = 'benchmarks-workers.svg';
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    fs.writeFileSync(path.join(path.dirname(outFile), chart), await workersChart(workers));
  }
  const doc = [
    '# drover benchmarks',
    '',
    '<!-- Generated by bench/report.ts from bench/results/*.json. Do not edit: run `npm run bench`. -->',
    '',
    'Numbers below come from `npm run bench` on the machine named in each section (this project\'s machine has',
    '2 cores and is shared, so compare ratios within one run, never absolute times across runs). Latency',
    'percentiles are computed from an HDR histogram of every response.',
    '',
    ...headlineTable(headlines(results)),
    '## Reading guide',
    '',
    ...SUITES.map((s) => `- **${s.name}**: ${s.guide}`),
    '',
    ...results.map((r) => section(r, r.suite === 'workers' ? chart : undefined)),
  ].join('\n');
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, doc);
  return outFile;
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..');
  void writeReport(path.join(root, 'bench', 'results'), path.join(root, 'docs', 'benchmarks.md')).then((out) => process.stdout.write(`wrote ${out}\n`));
}
