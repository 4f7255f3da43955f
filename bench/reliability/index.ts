/**
 * Every reliability case, in the order the runner, the report and the integration test use.
 * Each runs its own drover(s) and returns a CaseResult; nothing is shared between cases.
 */
import { controlBind, controlToken, metricsAuth } from './control';
import { primarySigkill, upstreamFault } from './faults-outside';
import { maxRequests, memoryLimit, rollingReload } from './faults-recycle';
import { workerSigkill, workerStuck } from './faults-worker';
import { hostileInputs } from './hostile';
import { slowloris } from './slowloris';
import { soak } from './soak';
import type { Scenario } from './types';

const q = (quick: number, standard: number) => (o: { profile: string }) => (o.profile === 'quick' ? quick : standard);

export const SCENARIOS: Scenario[] = [
  { id: 'worker-sigkill', title: 'SIGKILL a worker under load', group: 'fault', estimateS: q(10, 20), run: workerSigkill },
  { id: 'worker-stuck', title: 'A worker stuck in an infinite loop under load', group: 'fault', estimateS: q(12, 20), run: workerStuck },
  { id: 'memory-limit', title: 'Memory limit (--max-memory) recycles a growing worker', group: 'fault', estimateS: q(10, 20), run: memoryLimit },
  { id: 'max-requests', title: 'Request budget (--max-requests + jitter) recycles one worker at a time', group: 'fault', estimateS: q(20, 40), run: maxRequests },
  { id: 'rolling-reload', title: 'Rolling reload under load', group: 'fault', estimateS: q(20, 30), run: rollingReload },
  { id: 'primary-sigkill', title: 'SIGKILL the primary under load', group: 'fault', estimateS: q(10, 15), run: primarySigkill },
  { id: 'upstream-hang', title: 'The slow upstream (S1) hangs', group: 'fault', estimateS: q(10, 15), run: upstreamFault('hang') },
  { id: 'upstream-down', title: 'The slow upstream (S1) dies', group: 'fault', estimateS: q(8, 12), run: upstreamFault('down') },
  { id: 'slowloris', title: 'Slowloris (headers or body a byte at a time)', group: 'input', estimateS: q(10, 12), run: slowloris },
  { id: 'hostile-input', title: 'Hostile and malformed input', group: 'input', estimateS: q(10, 15), run: hostileInputs },
  { id: 'control-bind', title: 'Control plane binds to loopback unless told otherwise', group: 'control', estimateS: q(3, 3), run: controlBind },
  { id: 'control-token', title: "Reload needs the operator's bearer token", group: 'control', estimateS: q(4, 4), run: controlToken },
  { id: 'metrics-auth', title: '/metrics behind the token (--metrics-auth on); probes open', group: 'control', estimateS: q(3, 3), run: metricsAuth },
  { id: 'soak', title: 'Soak: mixed traffic with worker kills and reloads', group: 'soak', estimateS: (o) => o.soakSeconds + 10, run: soak },
];
