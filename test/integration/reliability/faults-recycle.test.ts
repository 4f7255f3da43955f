/**
 * Planned replacements under load, which must cost nothing: recycling past a memory limit, after a
 * request budget (with jitter), and rolling reloads.
 */
import { performance } from 'node:perf_hooks';
import { total } from '../../helpers/prom';
import { Fleet, RELIABILITY_APP, getText, lanesFor, linesSince, lineTime, pick, scrape, sleep, status, waitStatus, reliabilityCase, CaseBuilder } from '../../helpers/reliability';
import { PacedLoad } from '../../helpers/paced-load';
import { waitUntil } from '../../helpers/proc';
import type { CaseResult, ScenarioOptions } from '../../../bench/reliability/cases';

export async function memoryLimit(o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('memory-limit');
  const fleet = new Fleet();
  const limitMb = 220;
  const growMb = 192;
  try {
    const d = await fleet.start({ app: RELIABILITY_APP, args: ['--workers', '2', '--max-memory', String(limitMb)] });
    const rate = pick(o.profile, 400, 800);
    const n = lanesFor(rate);
    const load = new PacedLoad({ base: d.url(''), rate, lanes: { keepAlive: n / 2, fresh: n / 2 } }).start();
    await waitUntil(() => load.pids.size >= 2 && load.ok >= rate / 2, 'the load reaches every worker', 15_000);
    const st0 = await status(d);
    const baseMb = Math.max(...st0.workers.map((w) => (w.rssBytes ?? 0) / 2 ** 20));
    const mark = d.lines.length;
    const grown = JSON.parse((await getText(d.url(`/grow?mb=${growMb}`), {}, 'POST', 30_000)).body) as { pid: number; rssMb: number };
    const grownWall = Date.now();
    o.progress(`worker ${grown.pid} grew to ${grown.rssMb} MiB RSS (limit ${limitMb} MiB)`);
    const recycling = await d.waitFor((l) => l.msg === 'recycling worker' && l.workerPid === grown.pid, 10_000, mark);
    const listening = await d.waitFor((l) => l.msg === 'worker listening' && l.worker === recycling.worker, 10_000, mark);
    const exited = await d.waitFor((l) => l.msg === 'worker exited' && l.workerPid === grown.pid, 20_000, mark);
    await sleep(pick(o.profile, 1000, 3000));
    const fig = await load.stop();
    const s = await scrape(d);
    const draining = linesSince(d, mark, (l) => l.msg === 'worker draining' && l.workerPid === grown.pid)[0];
    const recycles = linesSince(d, mark, 'recycling worker');

    c.check('zero failed requests', fig.failed === 0, fig.failed, 0);
    c.check('the worker past the limit was recycled, reason memory', recycling.reason === 'memory', String(recycling.reason), 'memory');
    c.check('its replacement listened before it started draining', draining !== undefined && d.lines.indexOf(listening) < d.lines.indexOf(draining), draining ? 'yes' : 'no drain line');
    c.check('it exited after a clean drain (reason memory, code 0)', exited.reason === 'memory' && exited.code === 0, `${String(exited.reason)} / code ${String(exited.code)}`);
    c.check('only that worker was recycled', recycles.length === 1, recycles.length, 1);
    c.check('drover_worker_restarts_total{reason="memory"} = 1', total(s, 'drover_worker_restarts_total', { reason: 'memory' }) === 1, total(s, 'drover_worker_restarts_total', { reason: 'memory' }), 1);
    c.check('drover_worker_drains_total{reason="memory"} = 1', total(s, 'drover_worker_drains_total', { reason: 'memory' }) === 1, total(s, 'drover_worker_drains_total', { reason: 'memory' }), 1);
    const detectMs = lineTime(recycling) - grownWall;
    c.note(
      `Workers idled at ≤ ${Math.round(baseMb)} MiB RSS; POST /grow?mb=${growMb} took one to ${grown.rssMb} MiB. Recycling was logged ${Math.max(0, Math.round(detectMs))} ms ` +
        `after the growth (RSS is sampled once a second in the heartbeat), the replacement listened ${Math.round(lineTime(listening) - lineTime(recycling))} ms later, ` +
        `and the old worker drained and exited ${Math.round(lineTime(exited) - lineTime(listening))} ms after that.`,
    );
    return c.done({
      load: fig,
      faults: `1 worker grown by ${growMb} MiB past --max-memory ${limitMb}`,
      failed: fig.failed,
      bound: 0,
      recoveryMs: Math.round(lineTime(exited) - grownWall),
      details: { limitMb, growMb, baseMb: Math.round(baseMb), grownRssMb: grown.rssMb, detectMs: Math.round(detectMs), recycling: { rssBytes: recycling.rssBytes, maxRssBytes: recycling.maxRssBytes } },
    });
  } finally {
    await fleet.stopAll();
  }
}

export async function maxRequests(o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('max-requests');
  const fleet = new Fleet();
  const workers = 3;
  const limit = 400;
  const jitter = 400;
  let watching = false;
  try {
    const d = await fleet.start({ app: RELIABILITY_APP, args: ['--workers', String(workers), '--max-requests', String(limit), '--max-requests-jitter', String(jitter)] });
    const rate = pick(o.profile, 450, 700);
    const n = lanesFor(rate);
    const mark = d.lines.length;
    const load = new PacedLoad({ base: d.url(''), rate, lanes: { keepAlive: n / 2, fresh: n / 2 } }).start();
    // Watch /status: how many workers are being replaced at once, and how many serve.
    let maxReplacing = 0;
    let minServing = workers;
    let samples = 0;
    watching = true;
    const watcher = (async () => {
      while (watching) {
        const s = await status(d).catch(() => undefined);
        if (!s) break; // drover is gone: the case is failing anyway
        samples++;
        maxReplacing = Math.max(maxReplacing, s.workers.filter((w) => w.phase === 'retiring' || w.phase === 'draining').length);
        minServing = Math.min(minServing, s.workers.filter((w) => w.phase === 'listening').length);
        await sleep(25);
      }
    })();
    const wanted = pick(o.profile, 3, 6);
    await waitUntil(() => linesSince(d, mark, (l) => l.msg === 'worker exited' && l.reason === 'max-requests').length >= wanted, `${wanted} workers recycled`, pick(o.profile, 40_000, 80_000), 50);
    await sleep(500);
    const fig = await load.stop();
    watching = false;
    await watcher;
    const s = await scrape(d);
    const recycles = linesSince(d, mark, 'recycling worker');
    const exits = linesSince(d, mark, (l) => l.msg === 'worker exited' && l.reason === 'max-requests');
    // One at a time: each recycle starts only after the previous recycled worker has exited.
    let overlapping = 0;
    for (let i = 1; i < recycles.length; i++) {
      const prevExit = exits.find((e) => e.workerPid === recycles[i - 1]!.workerPid);
      if (!prevExit || d.lines.indexOf(prevExit) > d.lines.indexOf(recycles[i]!)) overlapping++;
    }
    const limits = [...new Set(recycles.map((r) => r.limit as number))].sort((a, b) => a - b);
    const spawnedLimits = recycles.map((r) => `${r.requests as number}/${r.limit as number}`);
    c.check('zero failed requests', fig.failed === 0, fig.failed, 0);
    c.check(`at least ${wanted} recycles, all reason max-requests`, recycles.length >= wanted && recycles.every((r) => r.reason === 'max-requests'), recycles.length, `≥ ${wanted}`);
    c.check('one at a time: each recycle began after the previous recycled worker exited', overlapping === 0, overlapping, 0);
    c.check('never more than one worker being replaced (/status samples)', maxReplacing <= 1, maxReplacing, 1);
    c.check(`never fewer than ${workers - 1} workers serving (/status samples)`, minServing >= workers - 1, minServing, `≥ ${workers - 1}`);
    c.check('jitter: the limits differ', limits.length >= Math.min(2, recycles.length), limits.join(', '));
    c.check('drover_worker_restarts_total{reason="max-requests"} = recycled workers that exited', total(s, 'drover_worker_restarts_total', { reason: 'max-requests' }) === exits.length, total(s, 'drover_worker_restarts_total', { reason: 'max-requests' }), exits.length);
    const spans = recycles.map((r) => {
      const e = exits.find((x) => x.workerPid === r.workerPid);
      return e ? lineTime(e) - lineTime(r) : NaN;
    }).filter((x) => !Number.isNaN(x));
    c.note(
      `--max-requests ${limit} --max-requests-jitter ${jitter} over ${workers} workers: ${recycles.length} recycles (requests/limit at recycle: ${spawnedLimits.join(', ')}); ` +
        `each took ${Math.round(Math.min(...spans))}–${Math.round(Math.max(...spans))} ms from decision to exit. ${samples} /status samples: at most ${maxReplacing} worker being replaced, at least ${minServing} serving.`,
    );
    return c.done({
      load: fig,
      faults: `${recycles.length} recycles at --max-requests ${limit}+0..${jitter}`,
      failed: fig.failed,
      bound: 0,
      recoveryMs: null,
      details: { limits, recycles: spawnedLimits, maxReplacing, minServing, samples, recycleMs: spans.map(Math.round) },
    });
  } finally {
    watching = false;
    await fleet.stopAll();
  }
}

export async function rollingReload(o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('rolling-reload');
  const fleet = new Fleet();
  const minRequests = 5000;
  try {
    const d = await fleet.start({ app: RELIABILITY_APP, args: ['--workers', '2'] });
    const rate = pick(o.profile, 700, 1000);
    const n = lanesFor(rate);
    const load = new PacedLoad({ base: d.url(''), rate, lanes: { keepAlive: Math.ceil(n / 2), fresh: Math.ceil(n / 3), fetch: Math.ceil(n / 6) } }).start();
    await waitUntil(() => load.pids.size >= 2 && load.ok >= rate / 2, 'the load reaches every worker', 15_000);
    let during = 0;
    const spans: number[] = [];
    let changedAll = true;
    // Reload until at least 5,000 requests were sent while a reload was under way.
    while (during < minRequests && spans.length < 10) {
      const before = await status(d);
      const gen = before.drover.generation + 1;
      const count0 = load.ok + load.failed;
      const t0 = performance.now();
      const mark = d.lines.length;
      d.child.kill('SIGHUP');
      await d.waitForMsg('rolling reload complete', 30_000, mark);
      const after = await waitStatus(d, 'only the new generation remains', (s) =>
        s.workers.length === 2 && s.workers.every((w) => w.phase === 'listening' && w.generation === gen) ? s : undefined, 30_000);
      spans.push(performance.now() - t0);
      during += load.ok + load.failed - count0;
      const old = new Set(before.workers.map((w) => w.pid));
      if (after.workers.some((w) => old.has(w.pid))) changedAll = false;
      o.progress(`reload ${spans.length} took ${Math.round(spans[spans.length - 1]!)} ms; ${during} requests during reloads so far`);
    }
    await sleep(500);
    const fig = await load.stop();
    const s = await scrape(d);
    c.check('zero failed requests', fig.failed === 0, fig.failed, 0);
    c.check(`at least ${minRequests} requests sent while reloads were under way`, during >= minRequests, during, `≥ ${minRequests}`);
    c.check('every reload replaced every worker', changedAll, changedAll ? 'yes' : 'no');
    c.check('drover_reloads_total{result="completed"} = reloads', total(s, 'drover_reloads_total', { result: 'completed' }) === spans.length, total(s, 'drover_reloads_total', { result: 'completed' }), spans.length);
    c.note(
      `${spans.length} rolling reloads of 2 workers (keep-alive, new-connection and fetch clients), each ${Math.round(Math.min(...spans))}–${Math.round(Math.max(...spans))} ms ` +
        `from SIGHUP until only new workers remained; ${during} of ${fig.requests} requests were sent inside those windows.`,
    );
    return c.done({
      load: fig,
      faults: `${spans.length} × SIGHUP`,
      failed: fig.failed,
      bound: 0,
      recoveryMs: Math.round(spans.reduce((a, b) => a + b, 0) / spans.length),
      details: { reloads: spans.length, requestsDuringReloads: during, reloadMs: spans.map(Math.round), lanes: fig.lanes },
    });
  } finally {
    await fleet.stopAll();
  }
}

reliabilityCase('memory-limit', memoryLimit);
reliabilityCase('max-requests', maxRequests);
reliabilityCase('rolling-reload', rollingReload);
