/**
 * Static checks of the deployment files (infra/compose, infra/k8s, infra/grafana): they parse,
 * have the fields their tools need, and agree with the code. Ports and env var names come from the
 * config schemas in packages/config, probe routes from what every app serves, metric names from
 * what the apps export. Nothing is started: no Docker, no cluster.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiSchema, nodeSchema, workerSchema } from '@herald/config';
import { type NginxConfOptions, renderNginxConf } from '@herald/stack';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE_DIR = path.join(REPO, 'infra/compose');
const K8S_DIR = path.join(REPO, 'infra/k8s');
const GRAFANA_DIR = path.join(REPO, 'infra/grafana');

// ---------------------------------------------------------------------------------------------
// What the apps provide

const SCHEMAS = { api: apiSchema, worker: workerSchema, node: nodeSchema } as const;
type App = keyof typeof SCHEMAS;
const APPS = Object.keys(SCHEMAS) as App[];

/** Routes every app serves: liveness and readiness. */
const LIVENESS = '/healthz';
const READINESS = '/readyz';

/** Read by Node.js itself, not by Herald's config; allowed next to the app's own settings. */
const RUNTIME_ENV = new Set(['NODE_OPTIONS']);

/** The node exits at the latest this long after its drain window (HeraldNode.drain deadline). */
const DRAIN_DEADLINE_S = 2;

function settings(app: App): Record<string, { default?: unknown }> {
  return SCHEMAS[app].properties as unknown as Record<string, { default?: unknown }>;
}

/**
 * Ports that serve /healthz, /readyz and /metrics: HERALD_PORT, and a separate health port when
 * the app has one and it is set (for probes that cannot speak PROXY protocol).
 */
function healthPorts(app: App, env: Map<string, string | undefined>): number[] {
  const ports = [effectiveInt(app, env, 'HERALD_PORT')];
  const extra = env.get('HERALD_HEALTH_PORT');
  if (extra !== undefined && Number(extra) > 0) ports.push(Number(extra));
  return ports;
}

/** The value a process sees: the environment if set, else the schema default. */
function effective(app: App, env: Map<string, string | undefined>, name: string): string {
  const set = env.get(name);
  if (set !== undefined) return set;
  const def = settings(app)[name]?.default;
  if (def === undefined) throw new Error(`${app}: ${name} is neither set nor has a default`);
  return String(def);
}

const effectiveInt = (app: App, env: Map<string, string | undefined>, name: string) => {
  const value = Number(effective(app, env, name));
  expect(Number.isInteger(value), `${app} ${name}`).toBe(true);
  return value;
};

/** Metrics the apps export, with their labels (besides `app` on all of them). */
const METRICS: Record<string, { labels: string[]; histogram?: true }> = {
  // api
  herald_notifications_published_total: { labels: ['target', 'scheduled', 'path'] },
  herald_http_requests_total: { labels: ['route', 'method', 'status'] },
  herald_http_request_duration_seconds: { labels: [], histogram: true },
  herald_publish_rejected_total: { labels: ['code'] },
  // worker
  herald_fanout_jobs_total: { labels: ['target', 'result'] },
  herald_fanout_job_duration_seconds: { labels: [], histogram: true },
  herald_queue_jobs: { labels: ['state'] },
  // node
  herald_connections: { labels: ['node'] },
  herald_connects_total: { labels: [] },
  herald_disconnects_total: { labels: ['reason'] },
  herald_frames_in_total: { labels: ['type'] },
  herald_frames_out_total: { labels: ['type'] },
  herald_deliveries_total: { labels: ['stream'] },
  herald_acks_total: { labels: [] },
  herald_replayed_entries_total: { labels: [] },
  herald_unrecovered_cursors_total: { labels: ['reason'] },
  herald_publish_to_socket_seconds: { labels: [], histogram: true },
  herald_slow_consumers_total: { labels: [] },
  // every process
  herald_redis_errors_total: { labels: [] },
  nodejs_eventloop_lag_seconds: { labels: [] },
  process_resident_memory_bytes: { labels: [] },
};
/** Added by every process (`app`) and by Prometheus when it scrapes (`job`, `instance`). */
const COMMON_LABELS = ['app', 'job', 'instance'];

// ---------------------------------------------------------------------------------------------
// Small typed accessors over parsed YAML/JSON

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function obj(v: unknown, where: string): Obj {
  if (!isObj(v)) throw new Error(`${where}: expected a mapping, got ${JSON.stringify(v)}`);
  return v;
}
function arr(v: unknown, where: string): Json[] {
  if (!Array.isArray(v)) throw new Error(`${where}: expected a list, got ${JSON.stringify(v)}`);
  return v as Json[];
}
function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '')
    throw new Error(`${where}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}
function num(v: unknown, where: string): number {
  if (typeof v !== 'number') throw new Error(`${where}: expected a number, got ${JSON.stringify(v)}`);
  return v;
}
const optObj = (v: unknown, where: string): Obj => (v === undefined ? {} : obj(v, where));
const optArr = (v: unknown, where: string): Json[] => (v === undefined ? [] : arr(v, where));

/** `node apps/<app>/dist/main.js` -> the app, checking that the app exists in the repo. */
function appOf(command: unknown, where: string): App | undefined {
  if (!Array.isArray(command)) return undefined;
  const [bin, script] = command;
  const m = typeof script === 'string' ? /^apps\/(\w+)\/dist\/main\.js$/.exec(script) : null;
  if (bin !== 'node' || !m) return undefined;
  const app = m[1] as App;
  expect(APPS, `${where}: unknown app in ${script}`).toContain(app);
  expect(fs.existsSync(path.join(REPO, `apps/${app}/src/main.ts`)), `${where}: apps/${app}`).toBe(true);
  return app;
}

/** Kubernetes quantities: `250m`, `2` (CPU), `512Mi`, `3Gi` (memory). */
function quantity(v: unknown, where: string): number {
  const s = String(v);
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(s);
  if (!m) throw new Error(`${where}: bad quantity ${s}`);
  const factor: Record<string, number> = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(m[1]) * (m[2] ? factor[m[2]]! : 1);
}

/** Compose durations: `20s`, `1m30s`, `500ms`. */
function seconds(v: unknown, where: string): number {
  const s = str(v, where);
  let total = 0;
  let rest = s;
  const unit: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 };
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(h|ms|us|m|s)/.exec(rest);
    if (!m) throw new Error(`${where}: bad duration ${s}`);
    total += Number(m[1]) * unit[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** Compose interpolation with a default (`${VAR:-default}`): the value when VAR is unset. */
const interpolateDefaults = (s: string) => s.replace(/\$\{\w+:?-([^}]*)\}/g, '$1');

// ---------------------------------------------------------------------------------------------
// Load every file once

function walk(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

interface Loaded {
  /** Every YAML/JSON file, relative path -> its documents. */
  files: Map<string, Json[]>;
  errors: string[];
}

function loadAll(): Loaded {
  const files = new Map<string, Json[]>();
  const errors: string[] = [];
  for (const file of [COMPOSE_DIR, K8S_DIR, GRAFANA_DIR].flatMap(walk).sort()) {
    const rel = path.relative(REPO, file);
    const text = fs.readFileSync(file, 'utf8');
    try {
      if (file.endsWith('.json')) files.set(rel, [JSON.parse(text) as Json]);
      else if (/\.ya?ml$/.test(file)) {
        const docs: Json[] = [];
        // merge: compose files share settings with YAML merge keys (<<: *anchor).
        for (const doc of parseAllDocuments(text, { merge: true, prettyErrors: true })) {
          for (const e of [...doc.errors, ...doc.warnings]) errors.push(`${rel}: ${e.message}`);
          const value = doc.toJS({ maxAliasCount: 1000 }) as Json;
          if (value !== null && value !== undefined) docs.push(value);
        }
        files.set(rel, docs);
      }
    } catch (err) {
      errors.push(`${rel}: ${(err as Error).message}`);
    }
  }
  return { files, errors };
}

const { files, errors: parseErrors } = loadAll();

function docsOf(rel: string): Json[] {
  const docs = files.get(rel);
  if (!docs) throw new Error(`${rel} is missing or did not parse`);
  return docs;
}

// ---------------------------------------------------------------------------------------------

describe('deployment files', () => {
  it('every YAML and JSON file parses', () => {
    expect(parseErrors).toEqual([]);
    for (const rel of [
      'infra/compose/compose.yaml',
      'infra/k8s/kustomization.yaml',
      'infra/grafana/herald-dashboard.json',
    ]) {
      expect(files.has(rel), rel).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

interface K8sObject {
  file: string;
  kind: string;
  name: string;
  doc: Obj;
}

const k8sObjects: K8sObject[] = [...files]
  .filter(([rel]) => rel.startsWith('infra/k8s/') && !rel.endsWith('kustomization.yaml'))
  .flatMap(([rel, docs]) =>
    docs.map((d, i) => {
      const doc = obj(d, `${rel}#${i}`);
      const meta = optObj(doc.metadata, `${rel}#${i} metadata`);
      return {
        file: rel,
        kind: String(doc.kind),
        name: String(meta.name),
        doc,
      };
    }),
  );
const ofKind = (kind: string) => k8sObjects.filter((o) => o.kind === kind);
const isTemplate = (rel: string) => rel.endsWith('.template.yaml');

const configMaps = new Map(
  ofKind('ConfigMap').map((o) => [o.name, optObj(o.doc.data, `${o.file} ConfigMap ${o.name} data`)]),
);
const secretTemplates = new Map(
  ofKind('Secret').map((o) => [
    o.name,
    { ...optObj(o.doc.stringData, `${o.file} stringData`), ...optObj(o.doc.data, `${o.file} data`) },
  ]),
);

interface Workload {
  obj: K8sObject;
  spec: Obj;
  podSpec: Obj;
  podLabels: Obj;
  containers: { container: Obj; app: App; env: Map<string, string | undefined>; envNames: string[] }[];
}

/** The environment a container gets: envFrom ConfigMaps/Secrets, then env (which wins). */
function containerEnv(
  c: Obj,
  where: string,
): { env: Map<string, string | undefined>; names: string[]; valueFrom: Map<string, Obj> } {
  const env = new Map<string, string | undefined>();
  const valueFrom = new Map<string, Obj>();
  for (const [i, f] of optArr(c.envFrom, `${where} envFrom`).entries()) {
    const from = obj(f, `${where} envFrom[${i}]`);
    if (from.configMapRef !== undefined) {
      const name = str(obj(from.configMapRef, `${where} configMapRef`).name, `${where} configMapRef.name`);
      const data = configMaps.get(name);
      expect(data, `${where}: ConfigMap ${name} is not defined in infra/k8s`).toBeDefined();
      for (const [k, v] of Object.entries(data ?? {})) env.set(k, String(v));
    } else if (from.secretRef !== undefined) {
      const name = str(obj(from.secretRef, `${where} secretRef`).name, `${where} secretRef.name`);
      const data = secretTemplates.get(name);
      expect(data, `${where}: Secret ${name} has no template in infra/k8s`).toBeDefined();
      for (const k of Object.keys(data ?? {})) env.set(k, undefined);
    } else throw new Error(`${where}: envFrom[${i}] is neither configMapRef nor secretRef`);
  }
  for (const [i, e] of optArr(c.env, `${where} env`).entries()) {
    const entry = obj(e, `${where} env[${i}]`);
    const name = str(entry.name, `${where} env[${i}].name`);
    if (entry.valueFrom !== undefined) {
      env.set(name, undefined);
      valueFrom.set(name, obj(entry.valueFrom, `${where} env ${name}.valueFrom`));
    } else env.set(name, String(entry.value));
  }
  return { env, names: [...env.keys()], valueFrom };
}

const workloads: Workload[] = ofKind('Deployment').map((o) => {
  const where = `${o.file} Deployment ${o.name}`;
  const spec = obj(o.doc.spec, `${where} spec`);
  const template = obj(spec.template, `${where} template`);
  const podSpec = obj(template.spec, `${where} pod spec`);
  const podLabels = obj(obj(template.metadata, `${where} template.metadata`).labels, `${where} pod labels`);
  const containers = arr(podSpec.containers, `${where} containers`).map((raw, i) => {
    const container = obj(raw, `${where} containers[${i}]`);
    const app = appOf(container.command, `${where} containers[${i}]`);
    if (!app) throw new Error(`${where}: container ${i} does not run node apps/<app>/dist/main.js`);
    const { env, names } = containerEnv(container, `${where} ${String(container.name)}`);
    return { container, app, env, envNames: names };
  });
  return { obj: o, spec, podSpec, podLabels, containers };
});

const workloadOf = (app: App): Workload => {
  const w = workloads.find((x) => x.containers.some((c) => c.app === app));
  if (!w) throw new Error(`no Deployment runs the ${app}`);
  return w;
};

const matches = (selector: Obj, labels: Obj) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Resolves a probe or Service port (number or container port name) to a number. */
function containerPort(container: Obj, port: unknown, where: string): number {
  const ports = arr(container.ports, `${where} ports`).map((p, i) => obj(p, `${where} ports[${i}]`));
  const found =
    typeof port === 'number'
      ? ports.find((p) => p.containerPort === port)
      : ports.find((p) => p.name === port);
  if (!found) throw new Error(`${where}: port ${String(port)} is not a declared container port`);
  return num(found.containerPort, `${where} containerPort`);
}

/** preStop sleep in seconds (`exec: [sleep, N]` or the `sleep` action), 0 without one. */
function preStopSeconds(container: Obj, where: string): number {
  const preStop = optObj(optObj(container.lifecycle, `${where} lifecycle`).preStop, `${where} preStop`);
  if (preStop.sleep !== undefined) return num(obj(preStop.sleep, `${where} sleep`).seconds, `${where} sleep`);
  if (preStop.exec === undefined) return 0;
  const command = arr(obj(preStop.exec, `${where} exec`).command, `${where} exec.command`).map(String);
  expect(command[0], `${where}: preStop exec must be a plain sleep`).toBe('sleep');
  return Number(command[1]);
}

describe('Kubernetes manifests (infra/k8s)', () => {
  it('every object has apiVersion, kind and metadata.name, and no namespace', () => {
    expect(k8sObjects.length).toBeGreaterThan(0);
    for (const o of k8sObjects) {
      const where = `${o.file} ${o.kind}/${o.name}`;
      str(o.doc.apiVersion, `${where} apiVersion`);
      str(o.doc.kind, `${where} kind`);
      str(obj(o.doc.metadata, `${where} metadata`).name, `${where} metadata.name`);
      expect(obj(o.doc.metadata, where).namespace, `${where}: namespace-less`).toBeUndefined();
    }
    const names = k8sObjects.map((o) => `${o.kind}/${o.name}`);
    expect(new Set(names).size, 'kind/name pairs are unique').toBe(names.length);
  });

  it('kustomization lists every manifest except the Secret template, and the image it renames', () => {
    const k = obj(docsOf('infra/k8s/kustomization.yaml')[0], 'kustomization');
    expect(k.kind).toBe('Kustomization');
    const resources = arr(k.resources, 'kustomization resources').map((r) => str(r, 'resource'));
    const manifests = [...new Set(k8sObjects.map((o) => path.relative('infra/k8s', o.file)))];
    expect([...resources].sort()).toEqual(manifests.filter((f) => !isTemplate(f)).sort());
    const images = optArr(k.images, 'kustomization images').map((i) =>
      str(obj(i, 'image').name, 'image name'),
    );
    for (const w of workloads)
      for (const { container } of w.containers) {
        const image = str(container.image, `${w.obj.name} image`);
        expect(images, `kustomization images covers ${image}`).toContain(image.replace(/[:@].*$/, ''));
      }
  });

  it('the Secret template holds placeholders only and covers every secretKeyRef', () => {
    expect(secretTemplates.size).toBeGreaterThan(0);
    for (const o of ofKind('Secret')) {
      expect(isTemplate(o.file), `${o.file}: Secrets live in *.template.yaml only`).toBe(true);
      const data = secretTemplates.get(o.name)!;
      expect(Object.keys(data).length).toBeGreaterThan(0);
      for (const [k, v] of Object.entries(data)) expect(v, `${o.file} ${k}`).toMatch(/^CHANGE_ME/);
    }
    for (const w of workloads)
      for (const { container } of w.containers) {
        const { valueFrom } = containerEnv(container, w.obj.name);
        for (const [name, from] of valueFrom) {
          if (from.secretKeyRef === undefined) continue;
          const ref = obj(from.secretKeyRef, `${w.obj.name} ${name}`);
          const secret = secretTemplates.get(str(ref.name, 'secret name'));
          expect(secret, `${w.obj.name} ${name}: Secret ${String(ref.name)}`).toBeDefined();
          expect(Object.keys(secret ?? {}), `${w.obj.name} ${name}`).toContain(ref.key);
        }
      }
  });

  it('ConfigMap values are strings', () => {
    for (const [name, data] of configMaps)
      for (const [k, v] of Object.entries(data)) expect(typeof v, `ConfigMap ${name} ${k}`).toBe('string');
  });

  it('a Deployment runs each app', () => {
    expect(workloads.flatMap((w) => w.containers.map((c) => c.app)).sort()).toEqual([...APPS].sort());
  });

  for (const app of APPS) {
    describe(app, () => {
      it('selector, image, ports, probes and resources', () => {
        const w = workloadOf(app);
        const where = `${w.obj.file} ${w.obj.name}`;
        expect(w.obj.doc.apiVersion).toBe('apps/v1');
        const selector = obj(obj(w.spec.selector, `${where} selector`).matchLabels, `${where} matchLabels`);
        expect(matches(selector, w.podLabels), `${where}: selector matches the pod labels`).toBe(true);
        for (const { container, env } of w.containers) {
          str(container.image, `${where} image`);
          const port = effectiveInt(app, env, 'HERALD_PORT');
          const ports = arr(container.ports, `${where} ports`).map((p) => obj(p, `${where} port`));
          expect(
            ports.map((p) => p.containerPort),
            `${where}: declares HERALD_PORT`,
          ).toContain(port);

          const readiness = obj(obj(container.readinessProbe, `${where} readinessProbe`).httpGet, 'httpGet');
          expect(readiness.path).toBe(READINESS);
          expect(healthPorts(app, env)).toContain(
            containerPort(container, readiness.port, `${where} readiness`),
          );
          const liveness = obj(obj(container.livenessProbe, `${where} livenessProbe`).httpGet, 'httpGet');
          expect(liveness.path).toBe(LIVENESS);
          expect(healthPorts(app, env)).toContain(
            containerPort(container, liveness.port, `${where} liveness`),
          );

          const resources = obj(container.resources, `${where} resources`);
          const requests = obj(resources.requests, `${where} requests`);
          const limits = obj(resources.limits, `${where} limits`);
          for (const r of ['cpu', 'memory']) {
            expect(quantity(requests[r], `${where} requests.${r}`)).toBeLessThanOrEqual(
              quantity(limits[r], `${where} limits.${r}`),
            );
          }
          // A V8 heap limit, when set, must sit below the container's memory limit.
          const heap = /--max-old-space-size=(\d+)/.exec(env.get('NODE_OPTIONS') ?? '');
          if (heap)
            expect(Number(heap[1]) * 2 ** 20).toBeLessThan(quantity(limits.memory, `${where} limits.memory`));

          const annotations = optObj(
            obj(obj(w.spec.template, 'template').metadata, 'template.metadata').annotations,
            `${where} annotations`,
          );
          if (annotations['prometheus.io/port'] !== undefined)
            expect(healthPorts(app, env), `${where} prometheus.io/port`).toContain(
              Number(annotations['prometheus.io/port']),
            );
        }
      });

      it('every environment variable is one of its settings', () => {
        const w = workloadOf(app);
        for (const { envNames } of w.containers)
          for (const name of envNames) {
            expect(
              name in settings(app) || RUNTIME_ENV.has(name),
              `${w.obj.file}: ${name} is not a setting of the ${app} (packages/config)`,
            ).toBe(true);
          }
      });

      it('terminationGracePeriodSeconds covers preStop and shutdown', () => {
        const w = workloadOf(app);
        const grace = num(
          w.podSpec.terminationGracePeriodSeconds,
          `${w.obj.name} terminationGracePeriodSeconds`,
        );
        for (const { container, env } of w.containers) {
          const preStop = preStopSeconds(container, w.obj.name);
          // The countdown starts before preStop; SIGTERM comes after it.
          const shutdownS =
            app === 'node'
              ? effectiveInt(app, env, 'HERALD_DRAIN_MS') / 1000 + DRAIN_DEADLINE_S
              : app === 'worker'
                ? effectiveInt(app, env, 'HERALD_SHUTDOWN_MS') / 1000
                : 5;
          expect(grace, `${w.obj.name}: grace > preStop + shutdown`).toBeGreaterThan(preStop + shutdownS);
          if (app === 'node') {
            expect(grace).toBeGreaterThan(effectiveInt(app, env, 'HERALD_DRAIN_MS') / 1000);
            expect(preStop, 'nodes sleep briefly before draining').toBeGreaterThan(0);
          }
        }
      });
    });
  }

  it('nodes take their id from the pod name', () => {
    const w = workloadOf('node');
    for (const { container } of w.containers) {
      const { valueFrom } = containerEnv(container, w.obj.name);
      const from = valueFrom.get('HERALD_NODE_ID');
      expect(from, 'HERALD_NODE_ID valueFrom').toBeDefined();
      expect(obj(from?.fieldRef, 'fieldRef').fieldPath).toBe('metadata.name');
    }
  });

  it('Services select one Deployment and target its ports', () => {
    for (const o of ofKind('Service')) {
      const where = `${o.file} Service ${o.name}`;
      const spec = obj(o.doc.spec, `${where} spec`);
      const selector = obj(spec.selector, `${where} selector`);
      const selected = workloads.filter((w) => matches(selector, w.podLabels));
      expect(selected.length, `${where}: selects exactly one Deployment`).toBe(1);
      const [w] = selected;
      for (const [i, p] of arr(spec.ports, `${where} ports`).entries()) {
        const port = obj(p, `${where} ports[${i}]`);
        num(port.port, `${where} port`);
        expect(port.protocol ?? 'TCP').toBe('TCP');
        const target = port.targetPort ?? port.port;
        const found = w!.containers.some(({ container }) => {
          try {
            return containerPort(container, target, where) > 0;
          } catch {
            return false;
          }
        });
        expect(found, `${where}: targetPort ${String(target)}`).toBe(true);
      }
    }
  });

  it('nodes sit behind a TCP LoadBalancer with externalTrafficPolicy Local; the API behind a ClusterIP', () => {
    const serviceFor = (app: App) => {
      const w = workloadOf(app);
      const s = ofKind('Service').find((o) =>
        matches(obj(obj(o.doc.spec, 'spec').selector, 'sel'), w.podLabels),
      );
      if (!s) throw new Error(`no Service for the ${app}`);
      return obj(s.doc.spec, 'spec');
    };
    const node = serviceFor('node');
    expect(node.type).toBe('LoadBalancer');
    expect(node.externalTrafficPolicy).toBe('Local');
    expect(serviceFor('api').type ?? 'ClusterIP').toBe('ClusterIP');
  });

  it('a HorizontalPodAutoscaler (autoscaling/v2) scales the nodes on resources they request', () => {
    const hpas = ofKind('HorizontalPodAutoscaler');
    const w = workloadOf('node');
    const hpa = hpas.find(
      (h) => obj(obj(h.doc.spec, 'spec').scaleTargetRef, 'scaleTargetRef').name === w.obj.name,
    );
    expect(hpa, 'HPA for the nodes').toBeDefined();
    expect(hpa!.doc.apiVersion).toBe('autoscaling/v2');
    const spec = obj(hpa!.doc.spec, 'hpa spec');
    const ref = obj(spec.scaleTargetRef, 'scaleTargetRef');
    expect([ref.apiVersion, ref.kind]).toEqual(['apps/v1', 'Deployment']);
    const min = num(spec.minReplicas, 'minReplicas');
    expect(min).toBeGreaterThanOrEqual(2);
    expect(num(spec.maxReplicas, 'maxReplicas')).toBeGreaterThan(min);
    expect(w.spec.replicas, 'the HPA owns the replica count').toBeUndefined();
    const metrics = arr(spec.metrics, 'hpa metrics').map((m) => obj(m, 'metric'));
    expect(metrics.length).toBeGreaterThan(0);
    for (const m of metrics.filter((x) => x.type === 'Resource')) {
      const name = str(obj(m.resource, 'resource').name, 'resource name');
      expect(['cpu', 'memory']).toContain(name);
      for (const { container } of w.containers)
        expect(obj(obj(container.resources, 'resources').requests, 'requests')[name]).toBeDefined();
    }
  });

  it('PodDisruptionBudgets select a Deployment; nodes go one at a time', () => {
    const pdbs = ofKind('PodDisruptionBudget');
    for (const p of pdbs) {
      expect(p.doc.apiVersion).toBe('policy/v1');
      const selector = obj(obj(obj(p.doc.spec, 'spec').selector, 'selector').matchLabels, 'matchLabels');
      expect(workloads.filter((w) => matches(selector, w.podLabels)).length, p.name).toBe(1);
    }
    const node = workloadOf('node');
    const pdb = pdbs.find((p) =>
      matches(obj(obj(obj(p.doc.spec, 'spec').selector, 's').matchLabels, 'm'), node.podLabels),
    );
    expect(pdb, 'PDB for the nodes').toBeDefined();
    expect(obj(pdb!.doc.spec, 'spec').maxUnavailable).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Docker Compose

const compose = obj(docsOf('infra/compose/compose.yaml')[0], 'compose.yaml');
const services = obj(compose.services, 'compose services');
const service = (name: string) => obj(services[name], `compose service ${name}`);

function composeEnv(s: Obj, where: string): Map<string, string | undefined> {
  const env = new Map<string, string | undefined>();
  const raw = s.environment;
  if (Array.isArray(raw))
    for (const e of raw) {
      const [k, ...v] = String(e).split('=');
      env.set(k!, v.length ? interpolateDefaults(v.join('=')) : undefined);
    }
  else
    for (const [k, v] of Object.entries(optObj(raw, `${where} environment`)))
      env.set(k, v === null ? undefined : interpolateDefaults(String(v)));
  return env;
}

const heraldServices = Object.keys(services).flatMap((name) => {
  const s = service(name);
  const app = appOf(s.command, `compose ${name}`);
  return app ? [{ name, s, app, env: composeEnv(s, `compose ${name}`) }] : [];
});
const composeNodes = heraldServices.filter((x) => x.app === 'node');

/** The URL a healthcheck requests, from its command. */
function healthcheckUrl(s: Obj, where: string): URL {
  const parts = arr(obj(s.healthcheck, `${where} healthcheck`).test, `${where} healthcheck.test`);
  // A YAML plain scalar with ": " in it silently becomes a mapping: every part must be a string.
  for (const part of parts)
    expect(typeof part, `${where}: healthcheck part ${JSON.stringify(part)}`).toBe('string');
  const test = parts.join(' ');
  const m = /https?:\/\/[^\s'"`]+/.exec(test);
  if (!m) throw new Error(`${where}: healthcheck requests no URL: ${test}`);
  return new URL(m[0]);
}

const nginxConf = fs.readFileSync(path.join(COMPOSE_DIR, 'nginx.conf'), 'utf8');

describe('Docker Compose (infra/compose)', () => {
  it('runs Redis, the API, a worker, three nodes and nginx', () => {
    expect(heraldServices.filter((x) => x.app === 'api').length).toBeGreaterThanOrEqual(1);
    expect(heraldServices.filter((x) => x.app === 'worker').length).toBeGreaterThanOrEqual(1);
    expect(composeNodes.map((x) => x.name).sort()).toEqual(['node-1', 'node-2', 'node-3']);
    expect(service('redis').image).toMatch(/^redis:7/);
    expect(service('nginx').image).toMatch(/^nginx:1\.27/);
  });

  it('Redis keeps an AOF, fsyncs every second, never evicts, on a volume', () => {
    const redis = service('redis');
    const command = arr(redis.command, 'redis command').map(String).join(' ');
    expect(command).toContain('--appendonly yes');
    expect(command).toContain('--appendfsync everysec');
    expect(command).toContain('--maxmemory-policy noeviction');
    const volumes = optArr(redis.volumes, 'redis volumes').map(String);
    const named = volumes.find((v) => v.endsWith(':/data'))?.split(':')[0];
    expect(named, 'a volume on /data').toBeDefined();
    expect(Object.keys(optObj(compose.volumes, 'volumes'))).toContain(named);
  });

  it('every Herald service builds or names an image, and every bind mount and build file exists', () => {
    for (const [name, raw] of Object.entries(services)) {
      const s = obj(raw, name);
      expect(s.image ?? s.build, `${name}: image or build`).toBeDefined();
      if (s.build !== undefined) {
        const build = obj(s.build, `${name} build`);
        const context = path.resolve(COMPOSE_DIR, str(build.context, `${name} build.context`));
        expect(fs.existsSync(path.join(context, str(build.dockerfile, 'dockerfile'))), name).toBe(true);
        expect(fs.existsSync(path.join(context, 'package-lock.json')), `${name}: context is the repo`).toBe(
          true,
        );
      }
      for (const v of optArr(s.volumes, `${name} volumes`).map(String)) {
        const source = v.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/'))
          expect(fs.existsSync(path.resolve(COMPOSE_DIR, source)), `${name}: ${source}`).toBe(true);
      }
    }
  });

  for (const app of APPS) {
    it(`${app}: healthcheck on ${READINESS} at HERALD_PORT, settings exist`, () => {
      const list = heraldServices.filter((x) => x.app === app);
      expect(list.length).toBeGreaterThan(0);
      for (const { name, s, env } of list) {
        const url = healthcheckUrl(s, name);
        expect(url.pathname, name).toBe(READINESS);
        expect(healthPorts(app, env), `${name}: healthcheck port`).toContain(Number(url.port));
        for (const k of env.keys())
          expect(k in settings(app) || RUNTIME_ENV.has(k), `${name}: ${k} is not a ${app} setting`).toBe(
            true,
          );
        const redisUrl = new URL(effective(app, env, 'REDIS_URL'));
        expect(Object.keys(services), `${name}: REDIS_URL host`).toContain(redisUrl.hostname);
      }
    });
  }

  it('stop_grace_period exceeds the drain window (nodes) and the shutdown window (worker)', () => {
    for (const { name, s, app, env } of heraldServices) {
      const grace = seconds(s.stop_grace_period ?? '10s', `${name} stop_grace_period`);
      if (app === 'node')
        expect(grace, name).toBeGreaterThan(
          effectiveInt(app, env, 'HERALD_DRAIN_MS') / 1000 + DRAIN_DEADLINE_S,
        );
      if (app === 'worker')
        expect(grace, name).toBeGreaterThan(effectiveInt(app, env, 'HERALD_SHUTDOWN_MS') / 1000);
    }
  });

  it('each node has its own HERALD_NODE_ID and enough file descriptors', () => {
    const ids = composeNodes.map(({ env }) => env.get('HERALD_NODE_ID'));
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { name, s, env } of composeNodes) {
      const nofile = obj(obj(s.ulimits, `${name} ulimits`).nofile, `${name} nofile`);
      expect(num(nofile.soft, `${name} nofile.soft`)).toBeGreaterThan(
        effectiveInt('node', env, 'HERALD_MAX_CONNECTIONS'),
      );
    }
  });

  it('nginx.conf is the shared template rendered for the compose nodes', () => {
    const options = JSON.parse(
      fs.readFileSync(path.join(COMPOSE_DIR, 'nginx.render.json'), 'utf8'),
    ) as NginxConfOptions;
    const rendered = renderNginxConf(options);
    expect(nginxConf.endsWith(rendered), 're-render: node infra/compose/render-nginx.mjs').toBe(true);
    const header = nginxConf.slice(0, nginxConf.length - rendered.length);
    expect(header.split('\n').every((l) => l === '' || l.startsWith('#'))).toBe(true);
    expect(nginxConf).not.toContain('{{');
  });

  it('nginx balances over exactly the compose nodes, at their ports, and outlasts their heartbeat', () => {
    const servers = [...nginxConf.matchAll(/^\s*server\s+([\w.-]+):(\d+)\b/gm)].map((m) => `${m[1]}:${m[2]}`);
    const expected = composeNodes.map(
      ({ name, env }) => `${name}:${effectiveInt('node', env, 'HERALD_PORT')}`,
    );
    expect(servers.sort()).toEqual(expected.sort());

    const timeout = /proxy_timeout\s+(\d+)s;/.exec(nginxConf);
    for (const { env } of composeNodes)
      expect(Number(timeout?.[1]) * 1000).toBeGreaterThan(effectiveInt('node', env, 'HERALD_HEARTBEAT_MS'));
    // The nodes parse a PROXY header exactly when nginx sends one.
    const proxyProtocol = /proxy_protocol\s+(on|off);/.exec(nginxConf)?.[1];
    for (const { env } of composeNodes)
      expect(effective('node', env, 'HERALD_PROXY_PROTOCOL') === 'true').toBe(proxyProtocol === 'on');

    const nginx = service('nginx');
    const listen = /^\s*listen\s+(?:[\d.]+:)?(\d+)\b/m.exec(nginxConf)?.[1];
    const published = optArr(nginx.ports, 'nginx ports').map((p) => String(p).split(':').at(-1));
    expect(published).toContain(listen);
    expect(optArr(nginx.volumes, 'nginx volumes').map(String)).toContain(
      './nginx.conf:/etc/nginx/nginx.conf:ro',
    );
    const dependsOn = obj(nginx.depends_on, 'nginx depends_on');
    for (const { name } of composeNodes)
      expect(obj(dependsOn[name], `nginx depends_on ${name}`).condition).toBe('service_healthy');
    const rlimit = Number(/worker_rlimit_nofile\s+(\d+);/.exec(nginxConf)?.[1]);
    const nofile = obj(obj(nginx.ulimits, 'nginx ulimits').nofile, 'nginx nofile');
    expect(num(nofile.hard, 'nginx nofile.hard')).toBeGreaterThanOrEqual(rlimit);
  });

  it('Prometheus scrapes every Herald service at its HERALD_PORT', () => {
    const prom = obj(docsOf('infra/compose/prometheus.yml')[0], 'prometheus.yml');
    const targets = arr(prom.scrape_configs, 'scrape_configs').flatMap((sc) =>
      arr(obj(sc, 'scrape_config').static_configs, 'static_configs').flatMap((c) =>
        arr(obj(c, 'static_config').targets, 'targets').map(String),
      ),
    );
    const expected = heraldServices.map(
      ({ name, app, env }) => `${name}:${effectiveInt(app, env, 'HERALD_PORT')}`,
    );
    expect(targets.sort()).toEqual(expected.sort());
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
]);

/** Metric names and grouping labels of a PromQL expression (enough for dashboard queries). */
function parsePromql(expr: string): { metrics: string[]; groupings: string[][] } {
  let rest = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const groupings: string[][] = [];
  rest = rest.replace(/\b(?:by|without)\s*\(([^)]*)\)/g, (_, labels: string) => {
    groupings.push(
      labels
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    return ' ';
  });
  const metrics: string[] = [];
  for (const m of rest.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const after = rest.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(') || PROMQL_KEYWORDS.has(m[0])) continue;
    metrics.push(m[0]);
  }
  return { metrics, groupings };
}

/** The exported metric a series name belongs to (histograms: _bucket, _sum, _count). */
function baseMetric(series: string): string | undefined {
  if (METRICS[series]) return series;
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  return m && METRICS[m[1]!]?.histogram ? m[1] : undefined;
}

const dashboard = obj(docsOf('infra/grafana/herald-dashboard.json')[0], 'dashboard');
const panels = arr(dashboard.panels, 'dashboard panels')
  .map((p) => obj(p, 'panel'))
  .flatMap((p) => [p, ...optArr(p.panels, 'row panels').map((x) => obj(x, 'panel'))]);
const queryPanels = panels.filter((p) => p.type !== 'row');

describe('Grafana dashboard (infra/grafana)', () => {
  it('has a title, a uid, unique panel ids and a datasource variable', () => {
    str(dashboard.title, 'title');
    str(dashboard.uid, 'uid');
    const ids = panels.map((p) => num(p.id, 'panel id'));
    expect(new Set(ids).size).toBe(ids.length);
    const vars = arr(obj(dashboard.templating, 'templating').list, 'templating.list').map((v) =>
      obj(v, 'var'),
    );
    expect(vars.some((v) => v.type === 'datasource' && v.name === 'datasource')).toBe(true);
    for (const p of queryPanels) {
      str(p.title, 'panel title');
      obj(p.gridPos, `${String(p.title)} gridPos`);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
      expect(obj(p.datasource, `${String(p.title)} datasource`).uid).toBe('${datasource}');
    }
  });

  it('queries only metrics the apps export, grouped by labels they carry', () => {
    const used = new Set<string>();
    for (const p of queryPanels) {
      const title = str(p.title, 'panel title');
      const targets = arr(p.targets, `${title} targets`).map((t) => obj(t, `${title} target`));
      expect(targets.length, title).toBeGreaterThan(0);
      for (const t of targets) {
        const expr = str(t.expr, `${title} expr`);
        const { metrics, groupings } = parsePromql(expr);
        expect(metrics.length, `${title}: ${expr}`).toBeGreaterThan(0);
        const labels = new Set(COMMON_LABELS);
        for (const series of metrics) {
          const base = baseMetric(series);
          expect(base, `${title}: unknown metric ${series}`).toBeDefined();
          used.add(base!);
          for (const l of METRICS[base!]!.labels) labels.add(l);
          if (series.endsWith('_bucket')) labels.add('le');
        }
        for (const group of groupings)
          for (const l of group)
            expect(labels.has(l), `${title}: ${metrics.join(', ')} has no label ${l}`).toBe(true);
        // After aggregation, a legend can only name labels that were kept.
        const kept = new Set(groupings.length ? groupings.flat() : labels);
        for (const m of String(t.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g))
          expect(kept.has(m[1]!), `${title}: legend {{${m[1]}}} is not kept by ${expr}`).toBe(true);
      }
    }
    expect([...used].sort(), 'every exported metric has a panel').toEqual(Object.keys(METRICS).sort());
  });
});
