import { laneLoop } from './load';
import { cpuClock, tree } from './proc';
import type { Server } from './servers';
import { median, round } from './stats';

/**
 * CPU per request of two servers measured side by side: both run at once, each under its own
 * evenly paced keep-alive load at the same rate, and each window reads both process trees' CPU.
 * Whatever the shared VM does to one window (a neighbour, a frequency step, a GC of the load
 * generator) it does to both, so the per-window ratio holds still where back-to-back rounds
 * spread 1.02–1.51 (ADR 0020). What it cannot cancel is position: which server was started first
 * (the second reads ~3 % cheaper here), which lanes the load generator serves first. So each
 * repetition runs the pair twice, swapped, with fresh processes, and its figure is the geometric
 * mean of the two orientations' medians. Repetitions differ by more than windows of one pair of
 * processes do (a pair of drovers against itself read 0.97–1.013 over five; ADR 0018, session
 * 13), so the result is the median of several repetitions, with their range.
 */
export interface SideBySideOptions {
  rate: number;
  connections: number;
  warmS: number;
  windowS: number;
  /** Windows per orientation. */
  windows: number;
  /** Repetitions, each with fresh processes in both orientations. */
  reps: number;
  progress?: (line: string) => void;
}

type Orientation = 'a first' | 'b first';

export interface SideBySideResult {
  /** µs of CPU per request of each window: [a, b] pairs. */
  windows: { rep: number; orientation: Orientation; aUs: number; bUs: number; ratio: number }[];
  /** Per repetition: the median of b/a over the windows of each orientation, and their geometric mean. */
  reps: { aFirst: number; bFirst: number; ratio: number }[];
  /** b / a: the median of the repetitions' ratios. */
  ratio: number;
}

/** Runs `start('a')` and `start('b')` side by side, `reps` times in both orientations; b / a per request. */
export async function sideBySide(start: (which: 'a' | 'b') => Promise<Server>, o: SideBySideOptions): Promise<SideBySideResult> {
  const windows: SideBySideResult['windows'] = [];
  const reps: SideBySideResult['reps'] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    const medians: number[] = [];
    for (const orientation of ['a first', 'b first'] as const) {
      const ratios = await onePair(start, orientation, o, (w) => windows.push({ rep, orientation, ...w }), `repetition ${rep}/${o.reps}, ${orientation}`);
      medians.push(median(ratios));
    }
    reps.push({ aFirst: round(medians[0]!, 3), bFirst: round(medians[1]!, 3), ratio: round(Math.sqrt(medians[0]! * medians[1]!), 3) });
  }
  return { windows, reps, ratio: round(median(reps.map((r) => r.ratio)), 3) };
}

/** One pair of fresh processes in one orientation: the b/a ratio of each window. */
async function onePair(
  start: (which: 'a' | 'b') => Promise<Server>,
  orientation: Orientation,
  o: SideBySideOptions,
  record: (w: { aUs: number; bUs: number; ratio: number }) => void,
  label: string,
): Promise<number[]> {
  const order = orientation === 'a first' ? (['a', 'b'] as const) : (['b', 'a'] as const);
  const servers: Partial<Record<'a' | 'b', Server>> = {};
  try {
    for (const which of order) servers[which] = await start(which);
    const pair = order.map((which) => servers[which]!);
    const load = (durationS: number) =>
      Promise.all(pair.map((s) => laneLoop({ url: s.url('/ping'), connections: o.connections, durationS, rate: o.rate, keepAlive: true })));
    await load(o.warmS);
    const ratios: number[] = [];
    for (let w = 1; w <= o.windows; w++) {
      o.progress?.(`side by side, ${label}, window ${w}/${o.windows}`);
      // The trees are read each window: a worker may have been replaced meanwhile.
      const clocks = pair.map((s) => cpuClock(tree(s.pid!)));
      const results = await load(o.windowS);
      const us = clocks.map((cpuMs, i) => (cpuMs() * 1000) / Math.max(1, results[i]!.requests));
      const [aUs, bUs] = orientation === 'a first' ? [us[0]!, us[1]!] : [us[1]!, us[0]!];
      record({ aUs: Math.round(aUs), bUs: Math.round(bUs), ratio: round(bUs / aUs, 3) });
      ratios.push(bUs / aUs);
    }
    return ratios;
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()));
  }
}
