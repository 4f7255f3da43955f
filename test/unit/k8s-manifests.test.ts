/**
 * deploy/kubernetes/ parses, passes the Kubernetes object schemas offline, and agrees with
 * drover's own defaults: probes on the control port's /livez and /readyz, a control plane that
 * listens beyond loopback, a grace period longer than drover's stop, workers tied to the CPU
 * limit, selectors and named ports that resolve.
 *
 * Two validators, both from the kubernetes-models packages (devDependencies kubernetes-models
 * and @kubernetes-models/prometheus-operator, pinned to 4.x: later releases require Node 22):
 * their JSON-schema validators (types, formats, required fields, enums), and their TypeScript
 * interfaces, which catch what the schemas allow: unknown fields such as a misspelled `livenesProbe`.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import ts from 'typescript';
import { defaults, envName, optionSpecs, parseDuration } from '../../src/options';
import { ROOT } from '../../bench/lib/drover';
import { K8S_DIR, loadAllYaml, loadYaml } from '../fixtures/observability-promql';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { resourceFieldRef?: { containerName?: string; resource: string; divisor?: string | number } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
}
interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: { containers: Container[]; terminationGracePeriodSeconds?: number };
}

/** Where each kind's model and interface live. */
const MODELS: Record<string, { module: string; iface: string }> = {
  Deployment: { module: 'kubernetes-models/apps/v1/Deployment', iface: 'IDeployment' },
  Service: { module: 'kubernetes-models/v1/Service', iface: 'IService' },
  HorizontalPodAutoscaler: { module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', iface: 'IHorizontalPodAutoscaler' },
  PodDisruptionBudget: { module: 'kubernetes-models/policy/v1/PodDisruptionBudget', iface: 'IPodDisruptionBudget' },
  PodMonitor: { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor', iface: 'IPodMonitor' },
};

type ModelClass = new (data: unknown) => { validate(): void };
/** Loaded once, in `before`: the model modules are large and only this file needs them. */
async function loadModels(): Promise<Record<string, ModelClass>> {
  const mods = await Promise.all([
    import('kubernetes-models/apps/v1/Deployment'),
    import('kubernetes-models/v1/Service'),
    import('kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'),
    import('kubernetes-models/policy/v1/PodDisruptionBudget'),
    import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'),
  ]);
  return {
    Deployment: mods[0].Deployment as unknown as ModelClass,
    Service: mods[1].Service as unknown as ModelClass,
    HorizontalPodAutoscaler: mods[2].HorizontalPodAutoscaler as unknown as ModelClass,
    PodDisruptionBudget: mods[3].PodDisruptionBudget as unknown as ModelClass,
    PodMonitor: mods[4].PodMonitor as unknown as ModelClass,
  };
}

/**
 * Type-checks each object literal against its kind's TypeScript interface in one in-memory
 * program. Returns the diagnostics per object (by index). Excess-property checks make unknown
 * fields errors at any depth.
 */
function typeCheck(objects: { kind: string; body: unknown }[]): string[][] {
  const file = path.join(ROOT, '__k8s_manifest_check__.mts');
  const lines: string[] = [];
  const owner: number[] = [];
  const imports = [...new Set(objects.map((o) => o.kind))].map((k) => `import type { ${MODELS[k]!.iface} } from '${MODELS[k]!.module}';`);
  for (const l of imports) {
    lines.push(l);
    owner.push(-1);
  }
  objects.forEach((o, i) => {
    const decl = `export const o${i}: ${MODELS[o.kind]!.iface} = ${JSON.stringify(o.body, null, 2)};`.split('\n');
    for (const l of decl) {
      lines.push(l);
      owner.push(i);
    }
  });
  const source = lines.join('\n') + '\n';
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (path.resolve(f) === file ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, ...rest));
  host.fileExists = (f) => path.resolve(f) === file || fileExists(f);
  host.readFile = (f) => (path.resolve(f) === file ? source : readFile(f));
  const program = ts.createProgram([file], options, host);
  const out: string[][] = objects.map(() => []);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || path.resolve(d.file.fileName) !== file || d.start === undefined) throw new Error(`type check failed outside the manifests: ${msg}`);
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const i = owner[line]!;
    if (i < 0) throw new Error(`cannot load the Kubernetes types: ${msg}`);
    out[i]!.push(`line ${line}: ${msg}`);
  }
  return out;
}

/** A Kubernetes CPU quantity in cores: "2", "1.5", "1500m". */
function cpuCores(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(q);
  assert.ok(m, `CPU quantity ${q}`);
  return Number(m[1]) / (m[2] ? 1000 : 1);
}

const files = fs.readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const objects: { file: string; obj: K8sObject }[] = files
  .filter((f) => f !== 'kustomization.yaml')
  .flatMap((f) => loadAllYaml(path.join(K8S_DIR, f)).map((obj) => ({ file: f, obj: obj as K8sObject })));
const one = (kind: string): K8sObject => {
  const found = objects.filter((o) => o.obj.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0]!.obj;
};
const deployment = one('Deployment');
const template = deployment.spec.template as PodTemplate;
const container = template.spec.containers[0]!;
const env = (name: string) => container.env?.find((e) => e.name === name);
const portByName = (name: string | number) => container.ports?.find((p) => p.name === name || p.containerPort === name);
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
/** The value drover will use for an option: the manifest's env, else drover's default. */
const optionMs = (envVar: string, fallback: number) => {
  const v = env(envVar)?.value;
  if (v === undefined) return fallback;
  const ms = parseDuration(v);
  assert.ok(ms !== undefined, `${envVar}=${v} is a duration with a unit`);
  return ms;
};

describe('deploy/kubernetes/', () => {
  let models: Record<string, ModelClass>;
  before(async () => {
    models = await loadModels();
  });

  it('every file parses, and the kustomization lists exactly the manifests', () => {
    assert.ok(objects.length >= 3);
    for (const { file, obj } of objects) {
      assert.ok(obj.apiVersion && obj.kind && obj.metadata?.name, `${file}: apiVersion, kind, metadata.name`);
      assert.ok(MODELS[obj.kind], `${file}: no schema for kind ${obj.kind}`);
    }
    for (const kind of ['Deployment', 'Service', 'PodMonitor']) one(kind);
    const k = loadYaml(path.join(K8S_DIR, 'kustomization.yaml')) as { kind: string; resources: string[] };
    assert.equal(k.kind, 'Kustomization');
    assert.deepEqual([...k.resources].sort(), files.filter((f) => f !== 'kustomization.yaml'));
  });

  it('every object passes its Kubernetes schema (kubernetes-models validators)', () => {
    for (const { file, obj } of objects) {
      assert.doesNotThrow(() => new models[obj.kind]!(obj).validate(), `${file}: ${obj.kind} ${obj.metadata.name}`);
    }
    // The validator is live: a port that is not a number is refused.
    const broken = structuredClone(deployment) as unknown as { spec: { template: PodTemplate } };
    (broken.spec.template.spec.containers[0]!.ports![0] as { containerPort: unknown }).containerPort = 'three thousand';
    assert.throws(() => new models.Deployment!(broken).validate(), /containerPort/);
  });

  it('no object has a field its Kubernetes type does not define (TypeScript types, strict)', () => {
    const typo = structuredClone(deployment) as unknown as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    const c = typo.spec.template.spec.containers[0]!;
    c.livenesProbe = c.livenessProbe;
    delete c.livenessProbe;
    const results = typeCheck([...objects.map((o) => ({ kind: o.obj.kind, body: o.obj })), { kind: 'Deployment', body: typo }]);
    const bad = results.pop()!;
    assert.ok(bad.some((m) => /livenesProbe/.test(m)), `the checker catches a misspelled field: ${bad.join('; ')}`);
    objects.forEach((o, i) => assert.deepEqual(results[i], [], `${o.file}: ${o.obj.kind}`));
  });

  it('probes go to the primary: /livez and /readyz on the control port drover listens on', () => {
    const control = fs.readFileSync(path.join(ROOT, 'src', 'primary', 'control-server.ts'), 'utf8');
    for (const [probe, route] of [[container.livenessProbe, '/livez'], [container.readinessProbe, '/readyz']] as const) {
      assert.equal(probe?.httpGet?.path, route);
      assert.ok(control.includes(`'GET ${route}'`), `drover's control server serves ${route}`);
      const port = portByName(probe!.httpGet!.port);
      assert.ok(port, `probe port ${probe!.httpGet!.port} is a container port`);
      assert.equal(port.containerPort, Number(env('DROVER_CONTROL_PORT')?.value ?? defaults.controlPort));
      assert.ok((probe!.timeoutSeconds ?? 1) >= 1 && (probe!.failureThreshold ?? 3) >= 1);
    }
    assert.equal(portByName('control')?.containerPort, defaults.controlPort, 'the control port is drover\'s default');
    // Loopback by default: the kubelet and Prometheus connect to the pod IP.
    assert.equal(defaults.controlHost, '127.0.0.1');
    assert.equal(env('DROVER_CONTROL_HOST')?.value, '0.0.0.0');
    assert.equal(env('DROVER_CONTROL_TOKEN'), undefined, 'POST /reload stays disabled');
  });

  it('the app port, command and env are ones drover understands', () => {
    const http = portByName('http');
    assert.equal(http?.containerPort, defaults.port);
    assert.equal(Number(env('PORT')?.value ?? defaults.port), http.containerPort);
    const argv = [...(container.command ?? []), ...(container.args ?? [])];
    assert.ok(argv.some((a) => /drover/.test(a)) && argv.includes('start'), `command runs drover start: ${argv.join(' ')}`);
    const known = new Set([...optionSpecs.map((s) => envName(s)), 'DROVER_APP']);
    for (const e of container.env ?? []) {
      if (!e.name.startsWith('DROVER_')) continue;
      assert.ok(known.has(e.name), `${e.name} is a drover option`);
      const spec = optionSpecs.find((s) => envName(s) === e.name);
      if (spec?.kind === 'duration') assert.ok(parseDuration(e.value ?? '') !== undefined, `${e.name}=${e.value} has a unit`);
    }
  });

  it('terminationGracePeriodSeconds outlasts shutdown delay + drain timeout + kill grace', () => {
    const delay = optionMs('DROVER_SHUTDOWN_DELAY', defaults.shutdownDelayMs);
    const drain = optionMs('DROVER_DRAIN_TIMEOUT', defaults.drainTimeoutMs);
    const kill = optionMs('DROVER_KILL_GRACE', defaults.killGraceMs);
    assert.ok(delay >= 1000, 'a shutdown delay of a few seconds, so endpoints are removed before the drain');
    const grace = template.spec.terminationGracePeriodSeconds;
    assert.ok(grace !== undefined, 'terminationGracePeriodSeconds is set (the default 30s is shorter than the drain timeout)');
    assert.ok(grace * 1000 >= delay + drain + kill + 5000, `${grace}s vs ${delay}+${drain}+${kill} ms + 5 s margin`);
  });

  it('WEB_CONCURRENCY is the CPU limit, through the Downward API', () => {
    const wc = env('WEB_CONCURRENCY');
    const ref = wc?.valueFrom?.resourceFieldRef;
    assert.equal(ref?.resource, 'limits.cpu');
    assert.equal(String(ref?.divisor), '1');
    assert.equal(ref?.containerName ?? container.name, container.name);
    assert.equal(env('DROVER_WORKERS'), undefined, 'DROVER_WORKERS would override WEB_CONCURRENCY');
    const limit = container.resources?.limits?.cpu;
    assert.ok(limit, 'a CPU limit is set (without one, limits.cpu is the node\'s CPU count)');
    assert.ok(Number.isInteger(cpuCores(limit)), 'a whole number of cores: the Downward API rounds up');
    assert.equal(cpuCores(container.resources?.requests?.cpu ?? '0'), cpuCores(limit), 'CPU request = limit: the workers get the cores they are sized for');
    assert.ok(container.resources?.limits?.memory, 'a memory limit');
  });

  it('the Service, PodMonitor, HPA and PDB select the Deployment\'s pods and ports', () => {
    const podLabels = template.metadata.labels;
    assert.ok(matches((deployment.spec.selector as { matchLabels: Record<string, string> }).matchLabels, podLabels));
    const svc = one('Service').spec as { selector: Record<string, string>; ports: { targetPort: string | number }[] };
    assert.ok(matches(svc.selector, podLabels), 'Service selects the pods');
    for (const p of svc.ports) assert.equal(portByName(p.targetPort)?.name, 'http', 'the Service exposes the app port only');
    const pm = one('PodMonitor').spec as { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path?: string }[] };
    assert.ok(matches(pm.selector.matchLabels, podLabels), 'PodMonitor selects the pods');
    const jobLabel = (pm as { jobLabel?: string }).jobLabel;
    if (jobLabel) assert.ok(podLabels[jobLabel], `jobLabel ${jobLabel} is a label of the pods`);
    for (const ep of pm.podMetricsEndpoints) {
      assert.equal(portByName(ep.port)?.containerPort, defaults.controlPort, 'scrapes the control port');
      assert.equal(ep.path ?? '/metrics', '/metrics');
    }
    const hpa = objects.find((o) => o.obj.kind === 'HorizontalPodAutoscaler')?.obj;
    if (hpa) {
      assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: deployment.apiVersion, kind: 'Deployment', name: deployment.metadata.name });
      assert.equal(deployment.spec.replicas, undefined, 'with an HPA the Deployment leaves replicas to it');
      assert.ok((hpa.spec.minReplicas as number) >= 2, 'at least two pods, so one can drain');
    }
    const pdb = objects.find((o) => o.obj.kind === 'PodDisruptionBudget')?.obj;
    if (pdb) assert.ok(matches((pdb.spec.selector as { matchLabels: Record<string, string> }).matchLabels, podLabels), 'PDB selects the pods');
  });
});
