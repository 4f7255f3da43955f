import { sideBySide } from '../lib/side-by-side';
import { startPeer, type PeerKind } from '../lib/servers';
import type { Context, Profile, Row, Suite } from '../lib/suite';

/** drover's optional worker features off: request metrics, the shedding sensor, block detection, 1 s snapshots. */
const BARE_DROVER = ['--request-metrics', 'off', '--shed-loop-delay', '0ms', '--metrics-interval', '60s', '--block-threshold', '0ms'];

interface Side {
  name: string;
  kind: PeerKind;
  args?: string[];
}

const DEFAULTS: Side = { name: 'drover defaults', kind: 'drover least-busy' };
const NODE_CLUSTER: Side = { name: 'node:cluster', kind: 'node:cluster' };

/**
 * The pairs, `b` over `a`. The first is the method's own check: one configuration against itself
 * (its ratio shows what the method cannot separate). Then issue 19's (drover's defaults against
 * bare node:cluster) and issue 17's (block detection on against off), and the split of the first
 * gap: what the optional features cost, and what is left with all of them off (drover's primary,
 * heartbeats, the request path).
 */
const PAIRS: { a: Side; b: Side }[] = [
  { a: DEFAULTS, b: DEFAULTS },
  { a: NODE_CLUSTER, b: DEFAULTS },
  { a: { name: 'drover, --block-threshold 0ms', kind: 'drover least-busy', args: ['--block-threshold', '0ms'] }, b: DEFAULTS },
  { a: { name: 'drover, optional features off', kind: 'drover least-busy', args: BARE_DROVER }, b: DEFAULTS },
  { a: NODE_CLUSTER, b: { name: 'drover, optional features off', kind: 'drover least-busy', args: BARE_DROVER } },
];

/**
 * Per profile: the paced rate per server, seconds of warm-up and per window, windows per
 * orientation, repetitions with fresh processes. Repetitions buy more than windows: fresh pairs
 * of processes differ by ~1-2 % where windows of one pair differ by less (ADR 0018, session 13).
 */
const PROFILES: Record<Profile, { rate: number; warmS: number; windowS: number; windows: number; reps: number }> = {
  tiny: { rate: 200, warmS: 0.5, windowS: 1, windows: 1, reps: 1 },
  quick: { rate: 1000, warmS: 5, windowS: 5, windows: 3, reps: 3 },
  full: { rate: 1000, warmS: 5, windowS: 5, windows: 6, reps: 5 },
};

export const overheadSuite: Suite = {
  name: 'overhead',
  title: "Overhead: drover's CPU per request against bare node:cluster and against itself, side by side",
  guide:
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
  estimateS: { tiny: 30, quick: 760, full: 2000 },
  async run(ctx: Context) {
    const p = PROFILES[ctx.profile];
    const workers = 2;
    const connections = 10;
    const rows: Row[] = [];
    const derived: Record<string, number | string> = {};
    for (const { a, b } of PAIRS) {
      const pair = `${b.name} / ${a.name}`;
      const r = await sideBySide((which) => {
        const side = which === 'a' ? a : b;
        return startPeer(side.kind, workers, { args: side.args });
      }, { ...p, connections, progress: (line) => ctx.progress(`${pair}: ${line}`) });
      for (const w of r.windows) {
        rows.push({ config: { pair, rep: w.rep, orientation: w.orientation }, values: { aCpuUsPerRequest: w.aUs, bCpuUsPerRequest: w.bUs, ratio: w.ratio } });
      }
      derived[`CPU per request, ${pair}: each repetition (median a first, median b first → their geometric mean)`] = r.reps
        .map((x) => `${x.aFirst}, ${x.bFirst} → ${x.ratio}`)
        .join('; ');
      derived[`CPU per request, ${pair}`] = r.ratio;
    }
    return {
      settings: { workers, connections, route: '/ping', ratePerServer: p.rate, load: 'keep-alive, evenly paced, both servers at once', warmupSeconds: p.warmS, windowSeconds: p.windowS, windowsPerOrientation: p.windows, repetitions: p.reps },
      rows,
      derived,
    };
  },
};
