/**
 * Generates docs/benchmarks.md from bench/results/*.json. Never edit the output by hand: rerun
 * `npm run bench` (or `node dist/bench/report.js` to re-render existing results).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { workersChart } from './chart';
import { mdTable } from './lib/markdown';
import { findRow, type Row, type SuiteResult } from './lib/suite';

/** What each suite shows, in the order the report lists them. Prose only: numbers come from results. */
const GUIDE: Record<string, string> = {
  workers:
    'Small requests arrive at a fixed rate (open loop: latency counts from the intended send time, so queueing behind a ' +
    'stall is included) while one client keeps big work in flight: the S0 payload (40,000 nested records, ~23 MB), a ' +
    '400 ms busy loop (`/block`), or S3\'s 25 MB JSON bodies. Every scenario runs drover and bare `node:cluster` (Node\'s ' +
    'own round-robin, which hands a worker a new connection only after it acknowledged the previous one) with the same ' +
    'app, back to back. New-connection rows compare dispatch: drover least-busy, drover round-robin (Node\'s policy in ' +
    'drover\'s primary, ADR 0012) and node:cluster. Keep-alive rows compare handlers: a keep-alive client stays on its ' +
    'worker, so only a handler that keeps the loop free (`streamJson()`) helps it. S3 rows send the small requests the ' +
    'way the report did: 2 KB bodies POSTed to the same `/ingest` endpoint as the 25 MB ones, on new connections (with ' +
    '`/ping` beside them, `pingP95`). `baselineP95` is the same configuration before the big client starts; ' +
    '`closedLoopP95` is what a closed-loop tool would have reported (time from actual send). One round per row: single ' +
    'rows on this shared 2-core machine move by tens of percent between runs.',
  proxy:
    'Behind a reverse proxy, as in production: a real nginx (one worker process, `upstream { keepalive 32; }`, ' +
    '`proxy_http_version 1.1`) in front of drover and of bare `node:cluster`, or a client pool of keep-alive connections ' +
    'handed out in turn (FIFO) shared by all requests. Small `/ping` requests at 50/s and 400/s go through the front (open loop) ' +
    'while one client loops on a 400 ms `/block` through the same front. A proxy\'s pooled connections are dispatched ' +
    'only when the proxy opens them; after that they stay on their worker, so what dispatch can do here depends on how ' +
    'often the pool opens connections. drover and node:cluster alternate round by round behind the same nginx; the ' +
    'derived ratios are medians of per-round ratios, and `over100ms` counts small requests that waited behind a block. ' +
    'At one worker the looping block keeps the only worker busy all the time: small requests are served in the short ' +
    'gaps between blocks, and a connection nginx opens meanwhile must first be adopted, which Node does for one socket ' +
    'per round trip between the processes (under drover and node:cluster alike), so about one per gap. When nginx ' +
    'opens connections faster than that, the queue runs away into seconds, in some rounds and not in others, under ' +
    'both: the one-worker rows measure that race, not dispatch (ADR 0024).',
  probe:
    'Scenario S0\'s probe collapse: probe requests answered per second (two keep-alive connections probing back to ' +
    'back) while a client keeps two 40,000-record responses in flight, naive `res.json()` vs `streamJson()`. Probes go ' +
    'to a worker route (`/ping`, what the report\'s liveness probe hit) and to the primary\'s `/livez` (what drover\'s ' +
    'Kubernetes manifests probe). The worst second is the number a liveness probe with a short timeout would see.',
  io:
    'Scenario S1: a handler calls an upstream that answers after 1000 ms, many users on one worker. `blocking` does ' +
    'the call synchronously on the event loop (the report\'s failing case), `async` uses non-blocking HTTP, `offload` ' +
    'runs the same blocking call on the thread pool (`threads` of them). The blocking call sleeps while it waits, as a ' +
    'real synchronous HTTP client does (a helper thread makes the request; ADR 0014). Shown like the report: requests, ' +
    'failures (a user gives up after 10 s), req/s, median; with more users than pool threads, calls queue for a thread.',
  crud:
    'Scenario S2: many users on `/items`, 75 % reads, 20 % writes, 5 % deletes, as workers are added; embedded SQLite ' +
    '(one file shared by all workers, WAL) and PostgreSQL when installed. 404s from reads and deletes of already-deleted ' +
    'items are expected and not counted as errors. Each row starts from the same data and is warmed up. The load ' +
    'generator, drover and the database share this machine\'s 2 cores, so the CPU split says where the time went: cores ' +
    'busy and CPU per request of drover\'s processes, the database server\'s and the load generator\'s, and how often ' +
    'drover\'s threads were preempted while runnable (`droverPreemptionsPerReq`: the cores are oversubscribed) or waited ' +
    'for IO, per request (ADR 0017).',
  peers:
    'What drover costs against its peers: the same demo app and the same `/ping` load under drover (least-busy and ' +
    'round-robin at their defaults, least-busy with request metrics, shedding off and metrics snapshots every 60 s, and ' +
    'least-busy with block detection off, `--block-threshold 0ms`), ' +
    'a bare `node:cluster` primary that only forks, the same bare primary over workers built of the lean drover\'s worker ' +
    'pieces (request path with connection tracking, heartbeats over IPC at drover\'s idle pace with the watchdog thread, ' +
    'drover\'s prom-client default metrics, `--enable-source-maps`), and pm2 cluster mode, alternated round by round in one ' +
    'run. Each peer is measured at saturation with keep-alive connections (autocannon) and with a new connection per ' +
    'request (a closed-loop client of our own); then, for the peers whose processes are the primary\'s children (not ' +
    'pm2), the CPU time of the whole process tree (scheduler time from /proc) per request at a fixed, keep-alive rate, and ' +
    'per second with no traffic. The derived ratios are medians of per-round ratios: each peer\'s req/s over drover ' +
    'least-busy\'s, then the lean drover\'s gap to node:cluster split in two: the bare primary over drover\'s worker ' +
    'pieces against lean drover is the cost of drover\'s primary (dispatch, handle passing, supervision); node:cluster ' +
    'against that row is the cost of the worker pieces. On this shared VM single rounds of one peer vary by tens of ' +
    'percent, so ratios from 6 rounds move by ±20 % from run to run (ADR 0008). Last, the "blocks every second" rows ' +
    '(ADR 0018): `/block?ms=300` at 1/s beside `/ping` on new connections at 50/s (open loop), drover with block ' +
    'detection on and off, alternated: failed requests, pings slower than 100 ms (handed to a blocked worker), and the ' +
    'blocks drover counted. Then idle CPU after 20 s without any traffic (drover sleeps after 10 s: 1 s heartbeats, ' +
    'the shedding sensor closed, metrics pushes skipped; ADR 0020), drover at its defaults and node:cluster, 3 rounds.',
  overhead:
    'drover\'s CPU per request measured side by side, the finer instrument the peers suite lacks: two servers run at ' +
    'once, each with 2 workers and its own evenly paced keep-alive `/ping` load at the same rate, and each window reads ' +
    'the CPU time (scheduler time from /proc) of both process trees. Whatever the shared VM does to a window, it does to ' +
    'both. Each repetition runs a pair in both start orders with fresh processes (the server started second reads a few % ' +
    'cheaper) and takes the geometric mean of the two orders\' medians of per-window ratios, b / a; the figure is the ' +
    'median of the repetitions (fresh processes differ by more than windows do). The first pair is drover ' +
    'against itself: what the method cannot separate. Then drover\'s defaults against bare node:cluster (issue 19\'s ' +
    'goal: at most 1.10), against itself with block detection off (issue 17\'s: within 1 %), and against itself with ' +
    'every optional worker feature off (request metrics, shedding, block detection, snapshots every 60 s), which in ' +
    'turn is compared with node:cluster: drover\'s core against its features (ADR 0020).',
  metrics:
    'How long `GET /metrics` takes as workers are added (each worker holding ~2,000 series), and what the per-request ' +
    'RED metrics cost: `/ping` throughput of the same app with `--request-metrics on` and `off`, alternated in one run. ' +
    'The goal is at most 5 % throughput overhead. Single runs here vary by tens of percent, so the throughput ratio ' +
    'is the median over alternated rounds; the `cost` suite answers the same question in instructions.',
  cost:
    'The cost questions of the two suites above, answered in instructions rather than seconds: every server process ' +
    '(primary and workers) runs under valgrind\'s callgrind, which counts the instructions it executes whatever else the shared machine does (throughput runs of one ' +
    'configuration here differ by up to 3x). A process started fresh and sent the same requests repeats its count to ' +
    '~1 %; consecutive windows of one running process do not, while the JIT is still warming up or a major GC falls ' +
    'in one window (the `each window` columns show the spread; counts still fall after 10,000 warm-up requests, so ' +
    'medians carry some warm-up): read differences under ~20 % in the cluster rows as "the same". After a JIT warm-up, ' +
    'counted `/ping` requests are sent with keep-alive and with a new connection each; periodic work (heartbeats, ' +
    'metrics snapshots, the pressure sensor) is measured while idle (for the request rows, the lower of two idle windows) and subtracted, since callgrind\'s ~50x slowdown ' +
    'would charge it to each request ~50x over; it is shown as instructions per second. Instructions are not time ' +
    '(kernel work and cache misses are not counted): this is the CPU work drover adds in user space.',
};

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
    GUIDE[r.suite] ?? '',
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
  const results = fs
    .readdirSync(resultsDir)
    // Only benchmark suites: other generated results (reliability.json) live in the same folder.
    .filter((f) => f.endsWith('.json') && f.slice(0, -5) in GUIDE)
    .map((f) => JSON.parse(fs.readFileSync(path.join(resultsDir, f), 'utf8')) as SuiteResult);
  const order = Object.keys(GUIDE);
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
    ...order.map((s) => `- **${s}**: ${GUIDE[s]}`),
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
