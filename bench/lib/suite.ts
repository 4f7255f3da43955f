import type { Machine } from './machine';

export type Profile = 'tiny' | 'quick' | 'full';

export interface Context {
  profile: Profile;
  /** Progress line for the operator (which configuration, how far along). */
  progress(msg: string): void;
}

/** One measured configuration; `failed` says why it produced no valid numbers. */
export interface Row {
  config: Record<string, string | number | boolean>;
  values: Record<string, unknown>;
  failed?: string;
}

export interface SuiteResult {
  suite: string;
  title: string;
  profile: Profile;
  machine: Machine;
  /** What was held constant (durations, rates, payload sizes). */
  settings: Record<string, unknown>;
  rows: Row[];
  /** Ratios and conclusions computed from the rows, for the report's prose. */
  derived: Record<string, number | string>;
}

export interface Suite {
  name: string;
  title: string;
  /** What the suite shows, for the report's reading guide: prose only, numbers come from results. */
  guide: string;
  /** Programs the suite runs (looked up on PATH and in /usr/sbin), checked before any suite starts. */
  requires?: { program: string; debian: string }[];
  /** Rough seconds per profile, for the progress line. */
  estimateS: Record<Profile, number>;
  run(ctx: Context): Promise<Omit<SuiteResult, 'machine' | 'profile' | 'suite' | 'title'>>;
}

/** The first row that ran (did not fail) with these config values. */
export function findRow(rows: Row[], config: Record<string, unknown>): Row | undefined {
  return rows.find((r) => !r.failed && Object.entries(config).every(([k, v]) => r.config[k] === v));
}

/** Runs `fn` on what `start` starts (a server, a database), and stops it after, whatever happens. */
export async function withRunning<S extends { stop(): Promise<unknown> }, T>(start: Promise<S>, fn: (s: S) => Promise<T>): Promise<T> {
  const s = await start;
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}
