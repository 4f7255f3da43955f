import { laneLoop } from './load';
import { cpuClock, tree } from './proc';
import type { Server } from './servers';
import { median, round } from './stats';

/**
 * CPU per request of two servers measured side by side: both run at once, each under its own
 * evenly paced keep-alive load at the same rate, and each window reads both process trees' CPU.
 * Whatever the shared VM does to one window (a neighbour, a frequency step, a GC of the load
 * generator) it does to both, so the per-window ratio holds still where back-to-back rounds
 * spread 1.02–1.51 (ADR 0020). What it cannot cancel is position: which server was started first,
 * which lanes the load generator serves first. So each pair runs twice, swapped, with fresh
 * processes, and the figure is the geometric mean of the two orientations' medians.
 */
export interface SideBySideOptions {
  rate: number;
  connections: number;
  warmS: number;
  windowS: number;
  /** Windows per orientation. */
  windows: number;
  progress?: (line: string) => void;
}

export interface SideBySideResult {
  /** µs of CPU per request of each window, per orientation: [a, b] pairs. */
  windows: { orientation: 'a first' | 'b first'; aUs: number; bUs: number; ratio: number }[];
  /** Median of b/a over the windows of each orientation. */
  medians: [number, number];
  /** b / a: the geometric mean of the two orientations' medians. */
  ratio: number;
}

/** Runs `start('a')` and `start('b')` side by side in both orientations; b / a per request. */
export async function sideBySide(start: (which: 'a' | 'b') => Promise<Server>, o: SideBySideOptions): Promise<SideBySideResult> {
  const out: SideBySideResult['windows'] = [];
  const medians: number[] = [];
  for (const orientation of ['a first', 'b first'] as const) {
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
        o.progress?.(`side by side, ${orientation}, window ${w}/${o.windows}`);
        // The trees are read each window: a worker may have been replaced meanwhile.
        const clocks = pair.map((s) => cpuClock(tree(s.pid!)));
        const results = await load(o.windowS);
        const us = clocks.map((cpuMs, i) => (cpuMs() * 1000) / Math.max(1, results[i]!.requests));
        const [aUs, bUs] = orientation === 'a first' ? [us[0]!, us[1]!] : [us[1]!, us[0]!];
        out.push({ orientation, aUs: Math.round(aUs), bUs: Math.round(bUs), ratio: round(bUs / aUs, 3) });
        ratios.push(bUs / aUs);
      }
      medians.push(median(ratios));
    } finally {
      await Promise.all(Object.values(servers).map((s) => s.stop()));
    }
  }
  return { windows: out, medians: [round(medians[0]!, 3), round(medians[1]!, 3)], ratio: round(Math.sqrt(medians[0]! * medians[1]!), 3) };
}
