/**
 * Faults inside one worker, under load: SIGKILL, and a loop that never ends.
 */
import { performance } from 'node:perf_hooks';
import { run } from '../../../bench/lib/drover';
import { Fleet, PROBE_CLIENT, RELIABILITY_APP, getText, lanesFor, lineTime, pick, sleep, status, reliabilityCase, CaseBuilder } from '../../helpers/reliability';
import { PacedLoad } from '../../helpers/paced-load';
import { round, waitUntil } from '../../helpers/proc';
import type { CaseResult, ScenarioOptions } from '../../../bench/reliability/cases';

/** DESIGN §5: start-up takes 0.3–0.5 s idle, up to ~1 s with both cores busy; 1 s is the goal, 3 s the bound. */
const REPLACEMENT_GOAL_MS = 1000;
const REPLACEMENT_BOUND_MS = 3000;

export async function workerSigkill(o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('worker-sigkill');
  const fleet = new Fleet();
  try {
    const d = await fleet.start({ app: RELIABILITY_APP, args: ['--workers', '3'] });
    const rate = pick(o.profile, 500, 800);
    const n = lanesFor(rate);
    const load = new PacedLoad({ base: d.url(''), rate, lanes: { keepAlive: n / 2, fresh: n / 2 } }).start('before the kill');
    await waitUntil(() => load.pids.size >= 3 && load.ok >= rate, 'the load reaches every worker', 15_000);
    await sleep(pick(o.profile, 500, 2000));
    // The victim: the worker with the most connections, so the kill costs something to bound.
    const before = await status(d);
    const victim = [...before.workers].sort((a, b) => (b.connections ?? 0) - (a.connections ?? 0))[0]!;
    const handedBefore = before.drover.dispatcher.dispatchedBySlot;
    const exposure = load.exposure(victim.pid);
    const mark = d.lines.length;
    const killWall = Date.now();
    const killAt = performance.now();
    process.kill(victim.pid, 'SIGKILL');
    load.beginPhase('after the kill');
    o.progress(`killed worker ${victim.pid} (slot ${victim.slot}) with ${exposure.bound} requests/sockets exposed`);

    await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === victim.pid, 5000, mark);
    // Connections handed to the victim after the /status read: the replacement has not listened yet
    // (it is forked only now), so the slot's counter holds only what went to the victim.
    const atExit = await status(d);
    const replacementUp = atExit.workers.some((w) => w.slot === victim.slot && w.phase === 'listening');
    const handedAfter = atExit.drover.dispatcher.dispatchedBySlot[victim.slot]! - handedBefore[victim.slot]!;
    // Open at its last beat, plus every connection handed to it that it had not adopted by then
    // (the beat can be a few ms older than the /status read: handoffs in between count here).
    const unadopted = victim.dispatched - (victim.adopted ?? 0);
    const serverBound = (victim.connections ?? 0) + unadopted + handedAfter;

    const listening = await d.waitFor((l) => l.msg === 'worker listening' && l.worker === victim.slot, 10_000, mark);
    const recoveryMs = lineTime(listening) - killWall;
    const newPid = listening.workerPid as number;
    await waitUntil(() => load.firstSeenAt.has(newPid), 'the replacement answers a request', 5000);
    const firstAnswerMs = load.firstSeenAt.get(newPid)! - killAt;
    await sleep(pick(o.profile, 1000, 3000));
    const fig = await load.stop();
    const after = await status(d);
    const unexplained = load.unexplainedFailures(victim.pid, killAt);

    c.check('failed requests ≤ what the client had on that worker (in flight + idle keep-alive + unattributed new connections)', fig.failed <= exposure.bound, fig.failed, exposure.bound);
    c.check('every failure was a request exposed to the killed worker', unexplained.length === 0, unexplained.length, 0);
    if (!replacementUp) c.check("failed requests ≤ the worker's open connections (/status) + connections handed to it after", fig.failed <= serverBound, fig.failed, serverBound);
    c.check('replacement listening within 3 s', recoveryMs <= REPLACEMENT_BOUND_MS, Math.round(recoveryMs), `${REPLACEMENT_BOUND_MS} ms (goal ${REPLACEMENT_GOAL_MS} ms)`);
    c.check('the replacement serves traffic', firstAnswerMs < 10_000, Math.round(firstAnswerMs));
    c.check('back to 3 listening workers', after.workers.filter((w) => w.phase === 'listening').length === 3, after.workers.length, 3);
    c.check('no connection dropped by the primary', after.drover.dispatcher.dropped === 0, after.drover.dispatcher.dropped, 0);
    c.note(
      `Replacement listening ${Math.round(recoveryMs)} ms after the kill (boot ${listening.bootMs} ms), first answer from it after ${Math.round(firstAnswerMs)} ms: ` +
        `${recoveryMs <= REPLACEMENT_GOAL_MS ? 'within' : 'over'} the 1 s goal (DESIGN §5: 0.3–0.5 s idle, up to ~1 s with both cores busy).`,
    );
    c.note(
      `At the kill the client had ${exposure.inFlightOnIt} requests in flight on the victim, ${exposure.inFlightUnknown} on new connections not yet attributed, ` +
        `${exposure.idleOnIt} idle keep-alive sockets on it; /status just before said ${victim.inFlight} in flight over ${victim.connections} connections ` +
        `(${unadopted} handed to it and not adopted by its last beat), and ${handedAfter} more connection(s) were handed to it before its exit was seen. Failures: ${JSON.stringify(fig.errors)}.`,
    );
    return c.done({
      load: fig,
      faults: '1 × SIGKILL of a busy worker (3 workers)',
      failed: fig.failed,
      bound: exposure.bound,
      recoveryMs: Math.round(recoveryMs),
      recoveryGoalMs: REPLACEMENT_GOAL_MS,
      details: { victim: { pid: victim.pid, slot: victim.slot, inFlight: victim.inFlight, connections: victim.connections }, exposure, handedAfter, serverBound, firstAnswerMs: Math.round(firstAnswerMs), bootMs: listening.bootMs, phases: fig.phases, lanes: fig.lanes, dispatcher: after.drover.dispatcher },
    });
  } finally {
    await fleet.stopAll();
  }
}

export async function workerStuck(o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('worker-stuck');
  const fleet = new Fleet();
  const timeoutMs = 2000;
  try {
    const d = await fleet.start({ app: RELIABILITY_APP, args: ['--workers', '2', '--worker-timeout', `${timeoutMs}ms`, '--kill-grace', '500ms'] });
    const rate = pick(o.profile, 400, 600);
    const n = lanesFor(rate);
    const load = new PacedLoad({ base: d.url(''), rate, lanes: { keepAlive: n / 2, fresh: n / 2 } }).start();
    await waitUntil(() => load.pids.size >= 2 && load.ok >= rate / 2, 'the load reaches every worker', 15_000);
    // Probes from their own process: nothing in this one may delay them.
    const probeMs = timeoutMs + 4500;
    const probes = run(process.execPath, [PROBE_CLIENT, String(probeMs), d.controlUrl('/livez'), d.controlUrl('/readyz')], { timeoutMs: probeMs + 30_000 });
    const mark = d.lines.length;
    const spinWall = Date.now();
    const spin = getText(d.url('/spin'), {}, 'GET', 30_000).then(
      (r) => `answered ${r.status}`,
      () => 'connection closed',
    );
    const stall = await d.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('worker stalled'), timeoutMs + 8000, mark);
    const stallAt = performance.now();
    const victim = stall.workerPid as number;
    const exposure = load.exposure(victim);
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === victim, 10_000, mark);
    const listening = await d.waitFor((l) => l.msg === 'worker listening' && l.worker === stall.worker, 10_000, mark);
    const spinOutcome = await spin;
    await sleep(pick(o.profile, 1000, 2000));
    const fig = await load.stop();
    const probed = JSON.parse((await probes).stdout) as Record<string, { count: number; statuses: Record<string, number>; maxMs: number; errors: number }>;
    const livez = probed[d.controlUrl('/livez')]!;
    const readyz = probed[d.controlUrl('/readyz')]!;

    const detectMs = lineTime(stall) - spinWall;
    const replaceMs = lineTime(listening) - lineTime(stall);
    const stack = Array.isArray(stall.stack) ? (stall.stack as string[]) : [];
    const unexplained = load.unexplainedFailures(victim, stallAt);
    c.check('stall detected within the worker timeout (+1 s of tick and scheduling slack)', detectMs <= timeoutMs + 1000, Math.round(detectMs), `${timeoutMs} + 1000 ms`);
    c.check('not before the timeout (heartbeat age at detection)', (stall.heartbeatAgeMs as number) >= timeoutMs, stall.heartbeatAgeMs as number, `≥ ${timeoutMs} ms`);
    c.check('the stuck JS stack is in the log (spinForever)', stack.some((f) => f.includes('spinForever')), stack[0] ?? 'none');
    c.check('the stuck worker exited as stalled', exited.reason === 'stalled', String(exited.reason), 'stalled');
    c.check('replacement listening within 3 s of the detection', replaceMs <= REPLACEMENT_BOUND_MS, Math.round(replaceMs), REPLACEMENT_BOUND_MS);
    c.check('/livez answered 200 every time', livez.errors === 0 && livez.statuses['200'] === livez.count, `${livez.statuses['200'] ?? 0}/${livez.count}, max ${round(livez.maxMs)} ms`);
    c.check('/readyz answered 200 every time (the other worker stayed fresh)', readyz.errors === 0 && readyz.statuses['200'] === readyz.count, `${readyz.statuses['200'] ?? 0}/${readyz.count}, max ${round(readyz.maxMs)} ms`);
    c.check('failed requests ≤ what was on the stuck worker', fig.failed <= exposure.bound, fig.failed, exposure.bound);
    c.check('every failure was a request exposed to the stuck worker', unexplained.length === 0, unexplained.length, 0);
    c.note(
      `Detected ${Math.round(detectMs)} ms after the /spin request (worker timeout ${timeoutMs} ms); top frame \`${stack[0] ?? 'none'}\`; replacement listening ` +
        `${Math.round(replaceMs)} ms after detection. The /spin request itself: ${spinOutcome}. Requests pinned to the stuck worker (its keep-alive sockets, ` +
        `new connections handed to it before its heartbeat went stale) failed when it was killed: ${JSON.stringify(fig.errors)}.`,
    );
    return c.done({
      load: fig,
      faults: `1 × GET /spin (for(;;){}) on one of 2 workers, --worker-timeout ${timeoutMs / 1000} s`,
      failed: fig.failed,
      bound: exposure.bound,
      recoveryMs: Math.round(lineTime(listening) - spinWall),
      details: { detectMs: Math.round(detectMs), replaceMs: Math.round(replaceMs), heartbeatAgeMs: stall.heartbeatAgeMs, stack: stack.slice(0, 4), exposure, livez: { ...livez, samples: undefined }, readyz: { ...readyz, samples: undefined }, spinOutcome },
    });
  } finally {
    await fleet.stopAll();
  }
}

reliabilityCase('worker-sigkill', workerSigkill);
reliabilityCase('worker-stuck', workerStuck);
