/**
 * Everything we ship for Prometheus and Grafana, proven against real tools:
 * - `promtool check config` / `check rules` pass, and `promtool test rules` shows every alert
 *   firing on the series that should fire it and silent otherwise (and a typo'd metric name
 *   makes those unit tests fail);
 * - a real Prometheus scrapes a real drover under a short, mixed load (2xx, 4xx, 5xx, a crash,
 *   a rolling reload, a stalled worker), loads alerts.yml healthy, and every PromQL expression
 *   of the dashboard (panels, annotations, variables) and of the alerts is evaluated through its
 *   HTTP API: it must be accepted, and return data, except the few that read metrics drover does
 *   not expose yet (NOT_EXPOSED_YET), which must be accepted and return nothing.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { defaults, parseDuration } from '../../src/options';
import { FIXTURES, run, startDrover, type Drover } from '../../bench/lib/drover';
import { prometheusSkipReason, startPrometheus, type Prometheus } from '../helpers/prometheus';
import {
  ALERTS,
  ALERT_TESTS,
  NOT_EXPOSED_YET,
  PROM_CONFIG,
  annotationExpressions,
  loadAlertRules,
  loadDashboard,
  loadYaml,
  operands,
  panelExpressions,
  parseLabelValues,
  selectors,
  substitute,
  variableQuery,
} from '../fixtures/observability-promql';

const skip = prometheusSkipReason();

interface AlertRuleTest {
  alertname: string;
  eval_time: string;
  exp_alerts?: unknown[];
}

describe('prometheus/: config and alert rules under promtool', () => {
  it('promtool check config and check rules pass', { skip }, async () => {
    const config = await run('promtool', ['check', 'config', PROM_CONFIG]);
    assert.equal(config.code, 0, config.stdout + config.stderr);
    const rules = await run('promtool', ['check', 'rules', ALERTS]);
    assert.equal(rules.code, 0, rules.stdout + rules.stderr);
    assert.match(rules.stdout, new RegExp(`SUCCESS: ${loadAlertRules().length} rules found`));
  });

  it('prometheus.yml scrapes drover where it listens by default, and loads the alerts', () => {
    const cfg = loadYaml(PROM_CONFIG) as {
      rule_files: string[];
      scrape_configs: { job_name: string; metrics_path?: string; scrape_timeout?: string; static_configs: { targets: string[] }[] }[];
    };
    assert.deepEqual(cfg.rule_files, ['alerts.yml']);
    const job = cfg.scrape_configs.find((j) => j.job_name === 'drover');
    assert.ok(job, 'a drover job');
    assert.equal(job.metrics_path ?? '/metrics', '/metrics');
    assert.deepEqual(job.static_configs.flatMap((c) => c.targets), [`${defaults.controlHost}:${defaults.controlPort}`]);
    // A scrape waits at most --metrics-timeout for the workers: the timeout must leave room.
    assert.ok(parseDuration(job.scrape_timeout ?? '10s')! > defaults.metricsTimeoutMs * 2);
  });

  it('promtool test rules: each alert fires where it should and stays silent otherwise', { skip }, async () => {
    const r = await run('promtool', ['test', 'rules', ALERT_TESTS]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
  });

  it('alerts.test.yml has a firing case and a silent case for every alert', () => {
    const doc = loadYaml(ALERT_TESTS) as { rule_files: string[]; tests: { alert_rule_test?: AlertRuleTest[] }[] };
    assert.deepEqual(doc.rule_files, ['alerts.yml']);
    const cases = doc.tests.flatMap((t) => t.alert_rule_test ?? []);
    const names = loadAlertRules().map((r) => r.alert);
    for (const name of names) {
      const mine = cases.filter((c) => c.alertname === name);
      assert.ok(mine.some((c) => (c.exp_alerts?.length ?? 0) > 0), `${name}: a case where it fires`);
      assert.ok(mine.some((c) => (c.exp_alerts?.length ?? 0) === 0), `${name}: a case where it stays silent`);
    }
    for (const c of cases) assert.ok(names.includes(c.alertname), `test case for unknown alert ${c.alertname}`);
  });

  it('every alert has a severity, a summary and a description that says what to do', () => {
    const rules = loadAlertRules();
    assert.ok(rules.length >= 6);
    const names = rules.map((r) => r.alert);
    assert.equal(new Set(names).size, names.length, 'alert names are unique');
    for (const n of ['DroverWorkerStalled', 'DroverCrashLoop', 'DroverEventLoopDelayHigh', 'DroverShedRateHigh', 'DroverLatencyP95High', 'DroverMetricsStale']) {
      assert.ok(names.includes(n), `alert ${n}`);
    }
    for (const r of rules) {
      assert.match(r.labels?.severity ?? '', /^(critical|warning)$/, `${r.alert}: severity`);
      assert.ok((r.annotations?.summary ?? '').length > 10, `${r.alert}: summary`);
      const desc = r.annotations?.description ?? '';
      assert.ok(desc.length > 150, `${r.alert}: a description long enough to act on`);
      assert.match(desc, /\b(Check|Look|Read|Find|Fix|Open|Add|Compare|Raise|See|Roll back)\b/i, `${r.alert}: the description tells the operator what to do`);
    }
  });

  it('a typo in a metric name makes promtool test rules fail (the unit tests have teeth)', { skip }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-alerts-'));
    try {
      const broken = fs.readFileSync(ALERTS, 'utf8').replace(/drover_worker_restarts_total/g, 'drover_worker_restart_total');
      fs.writeFileSync(path.join(dir, 'alerts.yml'), broken);
      fs.copyFileSync(ALERT_TESTS, path.join(dir, 'alerts.test.yml'));
      const r = await run('promtool', ['test', 'rules', path.join(dir, 'alerts.test.yml')]);
      assert.notEqual(r.code, 0, 'promtool test rules passed on rules with a misspelled metric');
      assert.match(r.stdout + r.stderr, /DroverWorkerStalled|DroverCrashLoop/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

interface QueryAnswer {
  status: string;
  error?: string;
  resultType?: string;
  result: { metric: Record<string, string>; value: [number, string] }[];
}

async function queryAt(prom: Prometheus, expr: string, time: number): Promise<QueryAnswer> {
  const res = await fetch(`${prom.url}/api/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ query: expr, time: time.toFixed(3) }),
  });
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
  if (body.status !== 'success') return { status: body.status, error: body.error, result: [] };
  const { resultType, result } = body.data!;
  const rows = resultType === 'scalar' ? [{ metric: {}, value: result as [number, string] }] : (result as QueryAnswer['result']);
  return { status: 'success', resultType, result: rows };
}

/**
 * Checks expressions against one Prometheus at one instant and collects every problem, so a
 * failure lists all broken expressions at once.
 */
class Checker {
  readonly problems: string[] = [];
  checked = 0;
  readonly allowListed: string[] = [];
  constructor(
    private readonly prom: Prometheus,
    private readonly time: number,
  ) {}

  /** `expectData`: the expression must return at least one series with a finite value. */
  async check(where: string, expr: string, expectData: boolean): Promise<QueryAnswer> {
    this.checked++;
    const a = await queryAt(this.prom, expr, this.time);
    if (a.status !== 'success') {
      this.problems.push(`${where}: Prometheus rejects it (${a.error})\n    ${expr}`);
      return a;
    }
    const pending = selectors(expr).map((s) => s.metric).filter((m) => NOT_EXPOSED_YET[m]);
    if (pending.length) {
      this.allowListed.push(`${where}: ${expr}`);
      if (a.result.length) this.problems.push(`${where}: reads ${pending.join(', ')}, which now returns data: remove it from NOT_EXPOSED_YET\n    ${expr}`);
      return a;
    }
    if (expectData && !a.result.some((r) => Number.isFinite(Number(r.value[1])))) {
      const why = a.result.length ? `only non-finite values (${a.result.map((r) => r.value[1]).join(', ')})` : 'no data';
      this.problems.push(`${where}: ${why}\n    ${expr}`);
    }
    return a;
  }
}

function get(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    req.on('error', () => resolve(-1));
    req.setTimeout(15_000, () => req.destroy());
  });
}

/**
 * Open-loop mixed traffic, ~40 requests/s on new connections (light on a shared 2-core machine):
 * fast and slow 2xx, 400, 404, a handler 500, a 30 ms busy loop (under the block threshold) and,
 * every 3 s, a block longer than --block-threshold; until `stop` resolves.
 */
async function mixedLoad(d: Drover, stop: Promise<unknown>): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  const inflight = new Set<Promise<void>>();
  const send = (p: string) => {
    const pr: Promise<void> = get(d.url(p)).then((s) => {
      statuses[s] = (statuses[s] ?? 0) + 1;
      inflight.delete(pr);
    });
    inflight.add(pr);
  };
  let tick = 0;
  const timer = setInterval(() => {
    tick++;
    send('/ping');
    send('/ping');
    send('/slow?ms=15');
    if (tick % 5 === 0) {
      send('/no-such-route'); // 404, route (unmatched)
      send('/slow?ms=abc'); // 400
      send('/fail'); // 500
    }
    if (tick % 10 === 0) send('/block?ms=30');
    // Over --block-threshold (100 ms): the "what blocks the loop" panel and alert have data.
    if (tick % 30 === 15) send('/block?ms=150');
  }, 100);
  await stop;
  clearInterval(timer);
  await Promise.all(inflight);
  return statuses;
}

describe('the dashboard and the alerts against a real Prometheus scraping a real drover', () => {
  let d: Drover | undefined;
  let prom: Prometheus | undefined;
  after(async () => {
    await prom?.stop();
    await d?.stop();
  });

  it('every expression is valid PromQL and returns data; the rules load healthy; a stall fires its alert', { skip, timeout: 120_000 }, async (t) => {
    d = await startDrover({
      app: path.join(FIXTURES, 'observability-app.js'),
      // A short stall timeout, so one 3 s block is a real stall within the test's budget (and
      // still far above any pause a busy shared machine gives a healthy worker).
      // A low shedding threshold, so back-to-back blocks below make the gate shed (shed metrics).
      args: ['--workers', '2', '--worker-timeout', '2s', '--drain-idle-grace', '100ms', '--shed-loop-delay', '100ms'],
    });
    const instance = `127.0.0.1:${d.controlPort}`;
    prom = await startPrometheus([instance], { rules: [ALERTS] });
    await prom.until('up{job="drover"}', (r) => r.length === 1 && r[0]!.value[1] === '1');
    const began = Date.now();

    // Load runs throughout; the events below happen inside it, one after the other.
    let endLoad!: () => void;
    const loadDone = mixedLoad(d, new Promise<void>((r) => (endLoad = r)));
    try {
      await new Promise((r) => setTimeout(r, 2000));
      let mark = d.lines.length;
      await get(d.url('/crash'));
      await d.waitFor((l) => l.msg === 'worker exited' && l.reason === 'crash', 10_000, mark);
      await d.waitForMsg('worker listening', 10_000, mark);
      mark = d.lines.length;
      d.child.kill('SIGHUP');
      await d.waitForMsg('rolling reload complete', 20_000, mark);
      mark = d.lines.length;
      void get(d.url('/block?ms=3000'));
      await d.waitFor((l) => l.msg === 'worker exited' && l.reason === 'stalled', 15_000, mark);
      // After the stall (a shed 3 s block would not stall anything): back-to-back 300 ms blocks on one keep-alive connection hold one worker's loop until its
      // pressure gate sheds (503): the shed panel and alert then have data. Bounded.
      const pinned = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let shed = 0;
      for (let i = 0; i < 40 && shed === 0; i++) {
        const status = await new Promise<number>((resolve) => {
          http.get(d!.url('/block?ms=300'), { agent: pinned }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          }).on('error', () => resolve(0));
        });
        if (status === 503) shed++;
      }
      pinned.destroy();
      assert.ok(shed > 0, 'the pressure gate shed a request');
      // At least 15 s of 1 s scrapes under load, so every range vector has samples.
      const left = 16_000 - (Date.now() - began);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    } finally {
      endLoad();
    }
    const statuses = await loadDone;
    t.diagnostic(`load: ${JSON.stringify(statuses)} over ${((Date.now() - began) / 1000).toFixed(1)} s`);
    // One more scrape after the load, so the last counts are in.
    await prom.until('sum(drover_worker_restarts_total{reason="stalled"})', (r) => Number(r[0]?.value[1]) >= 1, 15_000);

    // The alert rules are loaded, and every rule evaluated without error.
    const rules = loadAlertRules();
    const loaded = await waitForRules(prom, rules.length);
    assert.deepEqual(loaded.map((r) => r.name).sort(), rules.map((r) => r.alert).sort());
    for (const r of loaded) assert.equal(r.health, 'ok', `rule ${r.name}: ${r.lastError}`);
    // The stall really fires DroverWorkerStalled (for: 0) in the real Prometheus.
    await prom.until('ALERTS{alertname="DroverWorkerStalled", alertstate="firing"}', (r) => r.length === 1, 15_000);

    const time = Date.now() / 1000;
    const c = new Checker(prom, time);
    const vars = { job: 'drover', instance, worker: '.*', __rate_interval: '1m', __interval: '15s', __range: '5m' };
    const dash = loadDashboard();
    const exprs = [...panelExpressions(dash), ...annotationExpressions(dash)];
    for (const { where, expr } of exprs) await c.check(where, substitute(expr, vars), true);
    for (const v of dash.templating.list) {
      const { selector, label } = parseLabelValues(variableQuery(v));
      const a = await c.check(`variable ${v.name}`, `group by (${label}) (${substitute(selector, vars)})`, true);
      if (a.result.some((r) => !r.metric[label])) c.problems.push(`variable ${v.name}: a series without label ${label}`);
    }
    const dashboardCount = c.checked;
    for (const r of rules) {
      await c.check(`alert ${r.alert}`, r.expr, false);
      for (const [i, o] of operands(r.expr).entries()) await c.check(`alert ${r.alert} operand ${i + 1}`, o, true);
    }
    const alertCount = c.checked - dashboardCount;
    // Every selector on its own: a typo in a metric or label value points at itself.
    const allSelectors = new Map<string, string>();
    for (const { where, expr } of exprs) for (const s of selectors(substitute(expr, vars))) allSelectors.set(s.text, where);
    for (const r of rules) for (const s of selectors(r.expr)) allSelectors.set(s.text, `alert ${r.alert}`);
    for (const [sel, where] of allSelectors) await c.check(`${where}, selector`, sel, true);

    t.diagnostic(`dashboard: ${exprs.length} panel/annotation queries + ${dash.templating.list.length} variables; alerts: ${rules.length} rules, ${alertCount - rules.length} operands; ${allSelectors.size} distinct selectors; ${c.checked} queries in all`);
    t.diagnostic(`allow-listed (must be empty until the metric exists): ${JSON.stringify(NOT_EXPOSED_YET)}; ${c.allowListed.length} expressions: ${c.allowListed.map((x) => x.split(':')[0]).join('; ')}`);
    assert.deepEqual(c.problems, [], `expressions that fail:\n${c.problems.join('\n')}`);
    // The allow-list is the only escape hatch; with shedding exercised above it is empty: every
    // expression returns data.
    assert.equal(c.allowListed.length, 0, `allow-listed: ${c.allowListed.length}`);
    for (const m of Object.keys(NOT_EXPOSED_YET)) {
      assert.deepEqual((await queryAt(prom, `{__name__="${m}"}`, time)).result, [], `${m} is exposed now: drop it from NOT_EXPOSED_YET`);
    }

    // The blocks the panel and alert read are charged to the route that blocked.
    const blockRoutes = (await queryAt(prom, 'sum by (route) (drover_event_loop_blocked_seconds_total{job="drover"})', time)).result;
    assert.ok(blockRoutes.some((r) => r.metric.route === '/block' && Number(r.value[1]) >= 0.15), `blocked seconds of /block: ${JSON.stringify(blockRoutes)}`);

    // And the checker has teeth: a misspelled metric or label value fails it.
    const neg = new Checker(prom, time);
    await neg.check('typo', 'sum(rate(http_request_total{job="drover"}[1m]))', true);
    await neg.check('typo', 'max(drover_worker_event_loop_delay_seconds{stat="p999"})', true);
    await neg.check('typo', 'sum(rate(http_requests_total[1m])', true);
    assert.equal(neg.problems.length, 3, neg.problems.join('\n'));
  });
});

interface RuleState {
  name: string;
  health: string;
  lastError?: string;
}

/** Waits until Prometheus lists `n` rules and has evaluated each one at least once. */
async function waitForRules(prom: Prometheus, n: number): Promise<RuleState[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await fetch(`${prom.url}/api/v1/rules?type=alert`);
    const body = (await res.json()) as { data: { groups: { rules: RuleState[] }[] } };
    const rules = body.data.groups.flatMap((g) => g.rules);
    if (rules.length === n && rules.every((r) => r.health !== 'unknown')) return rules;
    if (Date.now() > deadline) throw new Error(`rules not loaded and evaluated: ${JSON.stringify(rules)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
