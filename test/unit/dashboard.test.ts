/**
 * The Grafana dashboard is structurally valid and importable: every panel has a query, a unit,
 * thresholds, a description and a unique id; the data source comes from the `__inputs` entry
 * (no hard-coded uid); the job, instance and worker variables exist and are used; every metric
 * a query reads is one drover documents. Whether the queries return data is proven against a
 * real Prometheus in test/integration/observability.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import {
  GRAFANA_BUILTINS,
  METRICS_DOC,
  NOT_EXPOSED_YET,
  OPERATIONS_DOC,
  allPanels,
  annotationExpressions,
  loadDashboard,
  metricFamily,
  operands,
  panelExpressions,
  parseLabelValues,
  selectors,
  substitute,
  tokenize,
  variableQuery,
  variableRefs,
  type DsRef,
  type Panel,
} from '../fixtures/observability-promql';

const d = loadDashboard();
const rows = d.panels.filter((p) => p.type === 'row');
const panels = allPanels(d).filter((p) => p.type !== 'row');
const VARIABLES = ['job', 'instance', 'worker'];
/** Grafana unit ids this dashboard may use (a typo would silently show raw numbers). */
const GRAFANA_UNITS = new Set(['reqps', 'cps', 'ops', 'percentunit', 's', 'ms', 'bytes', 'short', 'none']);
/** Rows the issue asks for, in order. */
const ROWS = ['Traffic', 'Errors', 'Latency', 'Saturation', 'Supervisor', 'Scrape health'];

/** Every `datasource` object anywhere in the JSON. */
function dataSourceRefs(node: unknown, at = '$', out: { at: string; ref: DsRef }[] = []): { at: string; ref: DsRef }[] {
  if (Array.isArray(node)) node.forEach((v, i) => dataSourceRefs(v, `${at}[${i}]`, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'datasource') out.push({ at: `${at}.datasource`, ref: v as DsRef });
      dataSourceRefs(v, `${at}.${k}`, out);
    }
  }
  return out;
}

describe('grafana/drover-dashboard.json', () => {
  it('is importable: one Prometheus data source input, referenced everywhere, no hard-coded uid', () => {
    assert.deepEqual(d.__inputs?.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
    assert.ok(d.__requires?.some((r) => r.type === 'datasource' && r.id === 'prometheus'));
    assert.ok(d.schemaVersion >= 36 && d.schemaVersion <= 41, `schemaVersion ${d.schemaVersion}`);
    assert.equal((d as { id?: unknown }).id ?? null, null, 'an exported dashboard has id null');
    const refs = dataSourceRefs(d);
    assert.ok(refs.length > panels.length, 'data sources are set on panels and queries');
    for (const { at, ref } of refs) {
      if (ref.type === 'grafana') {
        // Grafana's built-in "Annotations & Alerts" source: a fixed pseudo-uid, not a data source.
        assert.equal(ref.uid, '-- Grafana --', at);
        continue;
      }
      assert.deepEqual(ref, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, `${at} must use the DS_PROMETHEUS input`);
    }
    // Types of panels used are declared, as an export for sharing externally does.
    for (const type of new Set(panels.map((p) => p.type))) {
      assert.ok(d.__requires?.some((r) => r.type === 'panel' && r.id === type), `__requires lists panel type ${type}`);
    }
  });

  it('has unique ids and a sane grid', () => {
    const ids = allPanels(d).map((p) => p.id);
    for (const id of ids) assert.ok(Number.isInteger(id) && id! > 0, `panel id ${id}`);
    assert.equal(new Set(ids).size, ids.length, `duplicate panel ids: ${ids.join(',')}`);
    for (const p of allPanels(d)) {
      const g = p.gridPos!;
      assert.ok(g && g.w > 0 && g.h > 0 && g.x >= 0 && g.x + g.w <= 24, `gridPos of "${p.title}"`);
    }
  });

  it('every panel has a title, a description, queries, a unit and thresholds', () => {
    assert.ok(panels.length >= 20, `${panels.length} panels`);
    const titles = new Set<string>();
    for (const p of panels) {
      const name = `panel ${p.id} "${p.title}"`;
      assert.ok(p.title && p.title.trim().length > 0, `${name}: title`);
      assert.ok(!titles.has(p.title), `${name}: duplicate title`);
      titles.add(p.title);
      assert.ok((p.description ?? '').length >= 40, `${name}: a description that says what the panel shows`);
      assert.ok(p.targets && p.targets.length > 0, `${name}: at least one query`);
      const refIds = p.targets.map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${name}: unique refIds`);
      for (const t of p.targets) assert.ok(t.expr && t.expr.trim().length > 0, `${name} ${t.refId}: expr`);
      const unit = p.fieldConfig?.defaults?.unit;
      assert.ok(unit && GRAFANA_UNITS.has(unit), `${name}: unit '${unit}' is a Grafana unit id`);
      const th = p.fieldConfig?.defaults?.thresholds;
      assert.equal(th?.mode, 'absolute', `${name}: thresholds`);
      assert.ok(th.steps && th.steps.length >= 1 && th.steps[0]!.value === null, `${name}: thresholds start with a base step`);
      for (let i = 1; i < th.steps.length; i++) assert.ok(th.steps[i]!.value! > (th.steps[i - 1]!.value ?? -Infinity), `${name}: thresholds ascend`);
    }
  });

  it('is organised in the rows the issue asks for, each with panels', () => {
    assert.deepEqual(rows.map((r) => r.title), ROWS);
    d.panels.forEach((p, i) => {
      if (p.type !== 'row') return;
      const next = d.panels[i + 1];
      assert.ok((p.panels?.length ?? 0) > 0 || (next && next.type !== 'row'), `row "${p.title}" has panels`);
    });
    const titlesIn = (row: string): string[] => {
      const start = d.panels.findIndex((p) => p.type === 'row' && p.title === row);
      const out: string[] = [];
      for (let i = start + 1; i < d.panels.length && d.panels[i]!.type !== 'row'; i++) out.push(d.panels[i]!.title!);
      return out;
    };
    // The panels the issue names, in their rows.
    const has = (row: string, re: RegExp) => assert.ok(titlesIn(row).some((t) => re.test(t)), `row ${row} has a panel matching ${re}`);
    has('Traffic', /requests per second by route and status class/i);
    has('Errors', /5xx ratio/i);
    for (const q of ['p50', 'p95', 'p99']) has('Latency', new RegExp(`latency ${q} by route`, 'i'));
    for (const re of [/in flight/i, /shed/i, /event-loop delay p99 per worker/i, /event-loop utilization per worker/i, /RSS/i, /heap per worker/i]) has('Saturation', re);
    for (const re of [/workers by state/i, /restarts by reason/i, /heartbeat age per worker/i]) has('Supervisor', re);
    has('Scrape health', /stale/i);
  });

  it('defines the job, instance and worker variables from drover series, and uses them', () => {
    const vars = d.templating.list;
    assert.deepEqual(vars.map((v) => v.name), VARIABLES);
    for (const v of vars) {
      assert.equal(v.type, 'query');
      assert.deepEqual(v.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      const { selector } = parseLabelValues(variableQuery(v));
      assert.ok(selectors(selector).every((s) => s.metric.startsWith('drover_')), `${v.name}: values come from a drover metric`);
    }
    for (const v of vars.filter((x) => x.name !== 'job')) {
      assert.ok(v.multi && v.includeAll && v.allValue === '.*', `${v.name}: multi-value with All = .*`);
    }
    // Every selector of every panel query is scoped to the chosen job and instance ...
    for (const { where, expr } of [...panelExpressions(d), ...annotationExpressions(d)]) {
      for (const s of selectors(expr)) {
        assert.match(s.text, /job=~"\$job"/, `${where}: ${s.text} filters on $job`);
        assert.match(s.text, /instance=~"\$instance"/, `${where}: ${s.text} filters on $instance`);
      }
    }
    // ... and every per-worker series to the chosen workers.
    for (const p of panels) {
      for (const t of p.targets!) {
        for (const s of selectors(t.expr!)) {
          if (/^drover_(worker_(?!restarts|drains)|metrics_snapshot_|connections_dispatched)/.test(s.metric)) {
            assert.match(s.text, /worker=~"\$worker"/, `panel "${p.title}": ${s.text} filters on $worker`);
          }
        }
      }
    }
  });

  it('refers only to known variables, and rates use $__rate_interval', () => {
    const known = new Set([...VARIABLES, ...GRAFANA_BUILTINS]);
    const all = [
      ...panelExpressions(d),
      ...annotationExpressions(d),
      ...d.templating.list.map((v) => ({ where: `variable ${v.name}`, expr: variableQuery(v) })),
    ];
    for (const { where, expr } of all) {
      for (const name of variableRefs(expr)) {
        // `${1}` is a regex group in a label_replace replacement, which Grafana leaves alone.
        if (/^\d+$/.test(name)) continue;
        assert.ok(known.has(name), `${where}: unknown variable $${name}`);
      }
      const substituted = substitute(expr, { job: 'drover', instance: '.*', worker: '.*', __rate_interval: '1m', __interval: '15s', __range: '5m' });
      assert.doesNotThrow(() => tokenize(substituted), `${where}: tokenizes`);
    }
    for (const { where, expr } of [...panelExpressions(d), ...annotationExpressions(d)]) {
      for (const m of expr.matchAll(/\b(rate|irate|increase|changes)\((.*?)\[([^\]]+)\]/g)) {
        assert.equal(m[3], '$__rate_interval', `${where}: ${m[1]}() over $__rate_interval, not a fixed window`);
      }
    }
  });

  it('draws reloads as annotations from a Prometheus query', () => {
    const reloads = d.annotations.list.filter((a) => /reload/i.test(a.name));
    assert.equal(reloads.length, 1);
    assert.equal(reloads[0]!.enable, true);
    assert.deepEqual(reloads[0]!.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' });
    assert.match(reloads[0]!.expr!, /drover_generation|drover_reloads_total/);
  });

  it('reads only metrics drover documents (or that are allow-listed as not exposed yet)', () => {
    const documented = fs.readFileSync(METRICS_DOC, 'utf8');
    const names = new Set<string>();
    for (const { expr } of [...panelExpressions(d), ...annotationExpressions(d), ...d.templating.list.map((v) => ({ expr: parseLabelValues(variableQuery(v)).selector }))]) {
      for (const s of selectors(expr)) names.add(s.metric);
    }
    for (const name of names) {
      if (name === 'up' || NOT_EXPOSED_YET[name]) continue;
      assert.ok(
        documented.includes(`\`${name}\``) || documented.includes(`\`${metricFamily(name)}\``) || documented.includes(name.replace(/^drover_primary_/, '')),
        `${name} is not in docs/metrics.md: a typo, or an undocumented metric`,
      );
    }
  });

  it('has a paragraph for every panel in docs/operations.md', () => {
    const doc = fs.readFileSync(OPERATIONS_DOC, 'utf8');
    const headings = new Set([...doc.matchAll(/^#{2,4} (.+)$/gm)].map((m) => m[1]!.trim()));
    const missing = panels.map((p: Panel) => p.title!).filter((t) => !headings.has(t));
    assert.deepEqual(missing, [], 'panels without a heading in docs/operations.md');
  });
});

describe('the PromQL reader the tests rely on', () => {
  it('finds selectors and skips functions, aggregations and label lists', () => {
    const e = 'sum by (route, le) (rate(http_request_duration_seconds_bucket{job=~"$job", le!="x"}[5m])) / on (job) group_left max(up{job="a"}) + vector(0)';
    assert.deepEqual(selectors(e).map((s) => s.text), ['http_request_duration_seconds_bucket{job=~"$job", le!="x"}', 'up{job="a"}']);
    assert.deepEqual(selectors('label_replace(rate(a_total[1m]), "c", "${1}xx", "status_code", "([0-9])..")').map((s) => s.metric), ['a_total']);
  });

  it('splits conditions into operands', () => {
    assert.deepEqual(operands('up == 0 and on (job, instance) max_over_time(drover_build_info[1h])'), ['up', 'max_over_time(drover_build_info[1h])']);
    assert.deepEqual(operands('sum(a) / sum(b) > 0.05'), ['sum(a) / sum(b)']);
    assert.deepEqual(operands('sum by (x) (a{s="listening"}) < max by (x) (b)'), ['sum by (x) (a{s="listening"})', 'max by (x) (b)']);
    assert.deepEqual(operands('(a > 5) or (b >= bool -1)'), ['a', 'b']);
    assert.deepEqual(operands('histogram_quantile(0.9, sum by (le) (rate(x_bucket{a=">"}[5m]) > 0))'), ['histogram_quantile(0.9, sum by (le) (rate(x_bucket{a=">"}[5m]) > 0))']);
  });
});
