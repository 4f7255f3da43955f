import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { SuiteResult } from './lib/suite';

const BIG: Record<string, string> = { s0: 'S0 clients', block: '400 ms block', s3: 'S3 ingest (small bodies)' };
const HANDLER: Record<string, string> = { naive: 'naive', stream: 'streamJson', offload: 'offload' };

/** One line per peer × client kind × big work × handler, from the workers suite's rows. */
function series(r: SuiteResult): { workers: number; p95: number; series: string }[] {
  const out: { workers: number; p95: number; series: string }[] = [];
  for (const row of r.rows) {
    if (row.failed) continue;
    const c = row.config;
    const name = `${c.peer}, ${c.client}, ${BIG[c.big as string]} ${HANDLER[c.mode as string]}`;
    out.push({ workers: c.workers as number, p95: row.values.smallP95 as number, series: name });
  }
  return out;
}

/** The headline chart as SVG: small-request p95 (log scale) against the worker count. */
export async function workersChart(r: SuiteResult): Promise<string> {
  const spec = vl.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Small-request p95 while big work is served', subtitle: `${r.machine.cores} cores, Node ${r.machine.node}, profile ${r.profile}, ${r.machine.date.slice(0, 10)}` },
    width: 520,
    height: 320,
    data: { values: series(r) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'workers', type: 'ordinal', title: 'workers' },
      y: { field: 'p95', type: 'quantitative', scale: { type: 'log' }, title: 'p95 of the small requests, ms (log scale)' },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'right', columns: 1, labelLimit: 400 } },
    },
    config: { background: 'white' },
  } as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  return view.toSVG();
}
