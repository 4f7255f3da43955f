import * as hdr from 'hdr-histogram-js';

/** Latency histogram in microseconds (1 µs .. 120 s, 3 significant digits). p95 comes from here. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
}

/** A time in ms as the histograms' µs (at least 1, their lowest value). */
export const us = (ms: number) => Math.max(1, Math.round(ms * 1000));

/** The table shape of the seed reports: count, min, median, mean, p90, p95, p99, max (ms). */
export interface Summary {
  count: number;
  minMs: number;
  medianMs: number;
  meanMs: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

const ms = (us: number) => Math.round(us / 10) / 100;

export function summarize(h: hdr.Histogram): Summary {
  if (h.totalCount === 0) return { count: 0, minMs: 0, medianMs: 0, meanMs: 0, p90Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0 };
  return {
    count: h.totalCount,
    minMs: ms(h.minNonZeroValue),
    medianMs: ms(h.getValueAtPercentile(50)),
    meanMs: ms(h.mean),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p95Ms: ms(h.getValueAtPercentile(95)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    maxMs: ms(h.maxValue),
  };
}

/** `x` to `digits` decimal places, for the figures of a row. */
export const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** The median of plain numbers (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** p-th percentile of plain numbers (for small samples such as per-second counts or scrape times). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/**
 * Ratios of paired rounds (num[i] / den[i]), sorted, and their median (the upper one for an even
 * count). Suites alternate their configurations round by round, so a per-round ratio cancels
 * most of what the shared machine does to both.
 */
export function roundRatios(num: number[], den: number[]): { sorted: number[]; median: number } {
  const sorted = num.map((v, i) => v / (den[i] ?? NaN)).sort((a, b) => a - b);
  return { sorted, median: sorted[Math.floor(sorted.length / 2)] ?? NaN };
}
