/**
 * The reliability cases (test/integration/reliability/*.test.ts, node:test files) and the shape
 * each returns: a plain object the test asserts check by check and, under `npm run reliability`,
 * writes for bench/results/reliability.json and docs/reliability.md.
 */

export type Profile = 'quick' | 'standard';

/** What a case's client (test/helpers/paced-load.ts) held, for the report. */
export interface LoadFigures {
  /** Requests per second the client aimed at. */
  targetPerSec: number;
  /** Requests per second actually completed while the case ran. */
  reqPerSec: number;
  requests: number;
  failed: number;
  /** Failures by status or error code. */
  errors: Record<string, number>;
  /** Lanes by kind (keep-alive, new connection, fetch). */
  lanes?: Record<string, number>;
  /** Figures per phase of the case (before / during / after the fault), latency from due time. */
  phases?: { name: string; ok: number; failed: number; reqPerSec: number; medianMs: number; p99Ms: number; maxMs: number }[];
}

export interface ScenarioOptions {
  /** quick: short phases (`npm test`, `npm run reliability -- --quick`); standard: longer. */
  profile: Profile;
  /** Length of the soak's loaded phase. */
  soakSeconds: number;
  /** Progress line for the operator. */
  progress(msg: string): void;
}

/** One bound or expectation of a case. `knownBug` marks a check that fails because of a drover bug. */
export interface Check {
  name: string;
  ok: boolean;
  /** What was measured, as shown in the report. */
  value?: string | number;
  /** The bound it was held to. */
  limit?: string | number;
  /** Set when this check is expected to fail until a known drover bug is fixed (the test marks it todo). */
  knownBug?: string;
}

/** One row of the hostile-input table. */
export interface InputRow {
  input: string;
  expected: string;
  got: string;
  ms: number;
  /** The worker pids were the same before and after. */
  workersAlive: boolean;
  /** A /ping sent at the same moment got its 200. */
  pingOk: boolean;
  /** No stack trace, internal path or x-powered-by in the answer. */
  clean: boolean;
  ok: boolean;
  knownBug?: string;
  note?: string;
}

export interface CaseResult {
  id: string;
  /** What the row of the report says. */
  case: string;
  group: 'fault' | 'input' | 'control' | 'soak';
  load: LoadFigures | null;
  /** What was injected, in words ("1 × SIGKILL of a worker"). */
  faults: string;
  /** Failed requests of the load (null where the case has no such notion). */
  failed: number | null;
  /** The most failures the case allows (null: not bounded, see notes). */
  bound: number | null;
  /** Fault → recovered (replacement listening, upstream back, ...), ms. */
  recoveryMs: number | null;
  /** The goal the recovery is reported against, where the issue states one. */
  recoveryGoalMs?: number;
  /** Number of bad inputs tried (input cases). */
  inputs?: number;
  rows?: InputRow[];
  details: Record<string, unknown>;
  checks: Check[];
  notes: string[];
  pass: boolean;
  /** Set when the scenario itself threw. */
  error?: string;
  durationS: number;
}

/** Every case, in the report's order; estimates (s) per profile, for test timeouts. */
export const CASES: { id: string; title: string; group: CaseResult['group']; estimateS: (o: Pick<ScenarioOptions, 'profile' | 'soakSeconds'>) => number }[] = [
  { id: 'worker-sigkill', title: 'SIGKILL a worker under load', group: 'fault', estimateS: q(10, 20) },
  { id: 'worker-stuck', title: 'A worker stuck in an infinite loop under load', group: 'fault', estimateS: q(12, 20) },
  { id: 'memory-limit', title: 'Memory limit (--max-memory) recycles a growing worker', group: 'fault', estimateS: q(10, 20) },
  { id: 'max-requests', title: 'Request budget (--max-requests + jitter) recycles one worker at a time', group: 'fault', estimateS: q(20, 40) },
  { id: 'rolling-reload', title: 'Rolling reload under load', group: 'fault', estimateS: q(20, 30) },
  { id: 'primary-sigkill', title: 'SIGKILL the primary under load', group: 'fault', estimateS: q(10, 15) },
  { id: 'upstream-hang', title: 'The slow upstream (S1) hangs', group: 'fault', estimateS: q(10, 15) },
  { id: 'upstream-down', title: 'The slow upstream (S1) dies', group: 'fault', estimateS: q(8, 12) },
  { id: 'slowloris', title: 'Slowloris (headers or body a byte at a time)', group: 'input', estimateS: q(10, 12) },
  { id: 'hostile-input', title: 'Hostile and malformed input', group: 'input', estimateS: q(10, 15) },
  { id: 'control-bind', title: 'Control plane binds to loopback unless told otherwise', group: 'control', estimateS: q(3, 3) },
  { id: 'control-token', title: "Reload needs the operator's bearer token", group: 'control', estimateS: q(4, 4) },
  { id: 'metrics-auth', title: '/metrics behind the token (--metrics-auth on); probes open', group: 'control', estimateS: q(3, 3) },
  { id: 'soak', title: 'Soak: mixed traffic with worker kills and reloads', group: 'soak', estimateS: (o) => o.soakSeconds + 10 },
];

function q(quick: number, standard: number) {
  return (o: { profile: string }) => (o.profile === 'quick' ? quick : standard);
}

/** The result of a case that produced none (it threw, or its test was cancelled): failed, with why. */
export function noResult(id: string, error: string, durationS: number): CaseResult {
  const c = CASES.find((x) => x.id === id)!;
  return { id, case: c.title, group: c.group, load: null, faults: '—', failed: null, bound: null, recoveryMs: null, details: {}, checks: [], notes: [], pass: false, error, durationS };
}
