/**
 * The Docker deployment (docker-compose.yml, Dockerfile, .dockerignore, deploy/), checked as far as
 * a machine without a Docker engine can:
 *
 * - docker-compose.yml against the Compose Specification's JSON Schema (vendored from the Go module
 *   github.com/compose-spec/compose-go/v2, see deploy/schema/README.md: no network at test time),
 *   after compose's own variable interpolation;
 * - the rules of this deployment: images pinned to versions, health-gated dependencies that have a
 *   healthcheck, one-shot jobs that can complete, the worker built from ./Dockerfile with its
 *   topology read-only, no secret inline (secrets are files), Temporal server and schema tools of
 *   one version, the search attributes the code uses, ports published on the loopback only,
 *   Prometheus scraping the worker's metrics address with deploy/prometheus mounted read-only, the
 *   codec server built like the worker with the codec key and the UI pointed at it;
 * - the Dockerfile by a small lint (pinned FROM, non-root USER, no remote ADD, entrypoint, …) and
 *   the image's contents: every file and production package the worker loads is in it;
 * - `docker compose config` when the compose plugin is installed.
 * (deploy/'s scripts run against a real Temporal dev server in test/workflow/deploy-scripts.test.ts.)
 *
 * Every rule is also run on a broken copy, so that a rule that cannot fail is caught too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse as parseYaml, parseDocument } from 'yaml';
import { parseTopology } from '../../src/topology/load';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/lib/search-attributes';

const ROOT = resolve(__dirname, '../..');
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

// --- the compose model (only what the rules read) ------------------------------------------------

type EnvMap = Record<string, string | number | boolean | null>;
interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}
interface Mount {
  type?: string;
  source?: string;
  target?: string;
  read_only?: boolean;
}
interface ServiceSecret {
  source: string;
  target?: string;
}
interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: Healthcheck;
  environment?: string[] | EnvMap;
  env_file?: unknown;
  secrets?: (string | ServiceSecret)[];
  volumes?: (string | Mount)[];
  restart?: string;
  entrypoint?: string | string[];
  command?: string | string[];
  ports?: (string | number | PortMapping)[];
}
interface PortMapping {
  target?: number | string;
  published?: number | string;
  host_ip?: string;
}
interface ComposeFile {
  services: Record<string, Service>;
  secrets?: Record<string, { file?: string; environment?: string; external?: boolean }>;
}

function loadYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
  return doc.toJS({ maxAliasCount: 100 });
}

const composeText = read('docker-compose.yml');
const compose = loadYaml(composeText, 'docker-compose.yml') as ComposeFile;
const dockerfileText = read('Dockerfile');

/** A copy of the compose file with one change, for the rules' negative cases. */
function broken(change: (c: ComposeFile) => void): ComposeFile {
  const copy = structuredClone(compose);
  change(copy);
  return copy;
}

// --- interpolation, as compose does it before validating ----------------------------------------

/** ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, $VAR, $$. */
export function interpolate(value: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
      (whole, name: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
        if (whole === '$$') return '$';
        if (bare !== undefined) return env[bare] ?? '';
        const v = env[name as string];
        const argValue = () => String(interpolate(arg ?? '', env));
        switch (op) {
          case undefined:
            return v ?? '';
          case ':-':
            return v ? v : argValue();
          case '-':
            return v !== undefined ? v : argValue();
          case ':?':
          case '?':
            if (op === ':?' ? !v : v === undefined) throw new Error(`required variable ${name} is missing: ${argValue()}`);
            return v as string;
          case ':+':
            return v ? argValue() : '';
          case '+':
            return v !== undefined ? argValue() : '';
          default:
            throw new Error(`unsupported interpolation ${whole}`);
        }
      },
    );
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  }
  return value;
}

// --- rule: the Compose Specification's JSON Schema ---------------------------------------------

const SCHEMA_FILE = 'deploy/schema/compose-spec.json';
const composeSchema = JSON.parse(read(SCHEMA_FILE)) as Record<string, unknown>;
// As strict as this schema allows: unknown keywords are errors; it has untyped "properties" and
// "required" names defined only in sibling branches, which strictTypes/strictRequired would reject.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false, allowUnionTypes: true });
// The standard formats, so that a schema update using one is checked rather than refused; and
// "duration" as compose-go defines it (a Go duration such as 1m30s), not ISO 8601's.
addFormats(ajv);
ajv.addFormat('duration', /^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$/);
const validateCompose = ajv.compile(composeSchema);

function describeError(e: ErrorObject): string {
  const extra = e.params && 'unevaluatedProperty' in e.params ? `: "${String(e.params.unevaluatedProperty)}"` : '';
  const allowed = e.params && 'allowedValues' in e.params ? ` (${JSON.stringify(e.params.allowedValues)})` : '';
  return `${e.instancePath || '/'} ${e.message ?? e.keyword}${extra}${allowed}`;
}

function schemaProblems(c: unknown): string[] {
  const resolved = interpolate(c, {}); // unset variables: every ${VAR:-default} takes its default
  if (validateCompose(resolved)) return [];
  return (validateCompose.errors ?? []).map(describeError);
}

// --- rule: every image pinned to a version --------------------------------------------------------

/** Why an image reference is not pinned to a version, or null when it is. */
export function imagePinProblem(ref: string): string | null {
  if (ref.includes('$')) return `"${ref}" takes its version from a variable: write the version in the file`;
  const [nameTag, digest] = ref.split('@');
  const colon = nameTag.lastIndexOf(':');
  if (colon <= nameTag.lastIndexOf('/')) return `"${ref}" has no tag: pin a version such as name:1.2.3`;
  const tag = nameTag.slice(colon + 1);
  if (tag === 'latest') return `"${ref}" uses the tag "latest": pin a version`;
  if (!/^v?\d+\.\d+/.test(tag)) return `"${ref}": tag "${tag}" is not a version (at least MAJOR.MINOR, e.g. 15.18)`;
  if (digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(digest)) return `"${ref}" has a malformed digest`;
  return null;
}

function imageProblems(c: ComposeFile): string[] {
  const out: string[] = [];
  for (const [name, s] of Object.entries(c.services)) {
    if (s.image === undefined && s.build === undefined) out.push(`${name}: neither image nor build`);
    if (s.image !== undefined) {
      const p = imagePinProblem(String(s.image));
      if (p) out.push(`${name}: image ${p}`);
    }
  }
  return out;
}

// --- rule: dependencies that can be met ---------------------------------------------------------

function dependsOn(s: Service): [string, string][] {
  if (!s.depends_on) return [];
  if (Array.isArray(s.depends_on)) return s.depends_on.map((d) => [d, 'service_started']);
  return Object.entries(s.depends_on).map(([d, v]) => [d, v?.condition ?? 'service_started']);
}

function hasHealthcheck(c: ComposeFile, name: string): boolean {
  const s = c.services[name];
  const hc = s.healthcheck;
  if (hc && !hc.disable) {
    const test = Array.isArray(hc.test) ? hc.test : hc.test === undefined ? [] : [hc.test];
    if (test.length > 0 && test[0] !== 'NONE') return true;
  }
  // A built service may take its healthcheck from its Dockerfile's HEALTHCHECK.
  const df = buildDockerfile(s);
  return hc === undefined && df !== null && existsSync(df) && /^\s*HEALTHCHECK\s+(?!NONE\b)/im.test(readFileSync(df, 'utf8'));
}

function buildDockerfile(s: Service): string | null {
  if (s.build === undefined) return null;
  const context = typeof s.build === 'string' ? s.build : (s.build.context ?? '.');
  const dockerfile = typeof s.build === 'string' ? 'Dockerfile' : (s.build.dockerfile ?? 'Dockerfile');
  return resolve(ROOT, context, dockerfile);
}

function dependencyProblems(c: ComposeFile): string[] {
  const out: string[] = [];
  for (const [name, s] of Object.entries(c.services)) {
    for (const [dep, condition] of dependsOn(s)) {
      if (!(dep in c.services)) {
        out.push(`${name} depends on "${dep}", which is not a service`);
        continue;
      }
      if (condition === 'service_healthy' && !hasHealthcheck(c, dep)) out.push(`${name} waits for "${dep}" to be healthy, but "${dep}" has no healthcheck`);
      const restart = c.services[dep].restart;
      if (condition === 'service_completed_successfully' && (restart === 'always' || restart === 'unless-stopped'))
        out.push(`${name} waits for "${dep}" to complete, but "${dep}" restarts (${restart}) and never completes`);
    }
  }
  return out;
}

// --- rule: secrets are files, never inline --------------------------------------------------------

const SECRETISH = /(PASSWORD|PASSWD|PWD|PASS$|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY)/i;

function envEntries(s: Service): [string, string][] {
  if (!s.environment) return [];
  if (Array.isArray(s.environment)) {
    return s.environment.map((e) => {
      const i = e.indexOf('=');
      return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
    });
  }
  return Object.entries(s.environment).map(([k, v]) => [k, v === null ? '' : String(v)]);
}

function grantedSecrets(s: Service): Map<string, string> {
  // container path -> secret name
  const out = new Map<string, string>();
  for (const g of s.secrets ?? []) {
    const source = typeof g === 'string' ? g : g.source;
    const target = typeof g === 'string' ? undefined : g.target;
    const path = target === undefined ? `/run/secrets/${source}` : target.startsWith('/') ? target : `/run/secrets/${target}`;
    out.set(path, source);
  }
  return out;
}

function secretProblems(c: ComposeFile): string[] {
  const out: string[] = [];
  const defined = c.secrets ?? {};
  for (const [name, def] of Object.entries(defined)) {
    if (!def || typeof def.file !== 'string') out.push(`secret ${name}: not a file (file: ./deploy/secrets/${name})`);
    else if (!posix.normalize(def.file).startsWith('deploy/secrets/')) out.push(`secret ${name}: file ${def.file} is not under ./deploy/secrets/`);
  }
  for (const [name, s] of Object.entries(c.services)) {
    if (s.env_file !== undefined) out.push(`${name}: env_file may carry secrets into the environment; use secrets`);
    const granted = grantedSecrets(s);
    for (const source of granted.values()) if (!(source in defined)) out.push(`${name}: secret "${source}" is not defined under top-level secrets`);
    for (const [key, value] of envEntries(s)) {
      const refs = [...value.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]);
      for (const r of refs) if (SECRETISH.test(r)) out.push(`${name}: ${key} takes the secret-looking variable ${r} into the environment`);
      if (value.startsWith('/run/secrets/')) {
        if (!granted.has(value)) out.push(`${name}: ${key}=${value}, but that secret is not given to ${name}`);
        continue;
      }
      if (SECRETISH.test(key)) out.push(`${name}: ${key} is set inline; give it as a secret file (${key}_FILE=/run/secrets/…)`);
    }
  }
  return out;
}

// --- rule: the worker ---------------------------------------------------------------------------

function workerProblems(c: ComposeFile): string[] {
  const w = c.services.worker;
  if (!w) return ['no service "worker"'];
  const out: string[] = [];
  if (w.image !== undefined) out.push('worker: has an image; it must be built from ./Dockerfile');
  const df = buildDockerfile(w);
  if (df !== join(ROOT, 'Dockerfile')) out.push(`worker: builds from ${df ? relative(ROOT, df) : 'nothing'}, not ./Dockerfile`);
  const env = new Map(envEntries(w));
  const configPath = env.get('SWITCHYARD_CONFIG') ?? '/etc/switchyard/switchyard.yaml';
  const mount = (w.volumes ?? []).find((v): v is Mount => typeof v === 'object' && v.target === configPath);
  if (!mount) out.push(`worker: nothing is mounted at SWITCHYARD_CONFIG (${configPath})`);
  else if (mount.type !== 'bind' || mount.read_only !== true) out.push(`worker: the topology at ${configPath} must be a read-only bind mount`);
  if (!env.get('TEMPORAL_ADDRESS')) out.push('worker: TEMPORAL_ADDRESS is not set');
  return out;
}

// --- rule: ports published on the loopback interface only ------------------------------------------

const LOOPBACK = new Set(['127.0.0.1', '::1', '[::1]']);

/** A published port as host address, host port and container port (short or long syntax). */
function portMappings(s: Service): { hostIp: string | null; published: string | null; target: string; raw: string }[] {
  return (s.ports ?? []).map((p) => {
    if (typeof p === 'object')
      return { hostIp: p.host_ip ?? null, published: p.published === undefined ? null : String(p.published), target: String(p.target), raw: JSON.stringify(p) };
    const text = String(p).replace(/\/(tcp|udp)$/, '');
    const m = /^(?:(\[[^\]]+\]|[^:]+):)?(?:(\d+(?:-\d+)?):)?(\d+(?:-\d+)?)$/.exec(text);
    if (!m) return { hostIp: null, published: null, target: text, raw: String(p) };
    // "8080" alone publishes on a random host port; "a:b" is host:container; "ip:a:b" names the address.
    const [, first, second, target] = m;
    if (second === undefined) return { hostIp: null, published: first ?? null, target, raw: String(p) };
    return { hostIp: first, published: second, target, raw: String(p) };
  });
}

function portProblems(c: ComposeFile): string[] {
  const out: string[] = [];
  for (const [name, s] of Object.entries(c.services))
    for (const p of portMappings(s))
      if (p.hostIp === null || !LOOPBACK.has(p.hostIp)) out.push(`${name}: port ${p.raw} is published on every interface; bind it to 127.0.0.1`);
  return out;
}

/** "127.0.0.1:8888" for the container port a service publishes, or null. */
function publishedAt(s: Service, containerPort: string): string | null {
  const p = portMappings(s).find((x) => x.target === containerPort);
  return p && p.hostIp && p.published ? `${p.hostIp}:${p.published}` : null;
}

function args(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : v.split(/\s+/).filter(Boolean);
}

function topologyMountProblem(name: string, s: Service): string | null {
  const configPath = new Map(envEntries(s)).get('SWITCHYARD_CONFIG') ?? '/etc/switchyard/switchyard.yaml';
  const mount = (s.volumes ?? []).find((v): v is Mount => typeof v === 'object' && v.target === configPath);
  if (!mount) return `${name}: nothing is mounted at SWITCHYARD_CONFIG (${configPath})`;
  if (mount.type !== 'bind' || mount.read_only !== true) return `${name}: the topology at ${configPath} must be a read-only bind mount`;
  return null;
}

// --- rule: Prometheus scrapes the worker ---------------------------------------------------------

/** Where a service serves switchyard's metrics: SWITCHYARD_METRICS or a --metrics argument. */
function metricsListen(s: Service): string | null {
  const a = [...args(s.entrypoint), ...args(s.command)];
  const i = a.indexOf('--metrics');
  if (i >= 0 && a[i + 1]) return a[i + 1];
  return new Map(envEntries(s)).get('SWITCHYARD_METRICS') || null;
}

function prometheusProblems(c: ComposeFile): string[] {
  const p = c.services.prometheus;
  if (!p) return ['no service "prometheus"'];
  const out: string[] = [];
  if (!p.image?.startsWith('prom/prometheus:')) out.push(`prometheus: image ${p.image}, expected prom/prometheus:<version>`);
  const configFile = args(p.command)
    .find((a) => a.startsWith('--config.file='))
    ?.slice('--config.file='.length);
  if (!configFile) return [...out, 'prometheus: no --config.file in its command'];
  const mount = (p.volumes ?? []).find((v): v is Mount => typeof v === 'object' && !!v.target && configFile.startsWith(`${v.target}/`));
  if (!mount || !mount.source) return [...out, `prometheus: ${configFile} is in no mount`];
  if (mount.type !== 'bind' || posix.normalize(mount.source) !== 'deploy/prometheus')
    out.push(`prometheus: ${mount.target} is ${mount.source}, expected a bind mount of ./deploy/prometheus`);
  if (mount.read_only !== true) out.push(`prometheus: the mount of ${mount.source} is writable; mount it read-only`);
  if (!hasHealthcheck(c, 'prometheus')) out.push('prometheus: no healthcheck');
  const hostFile = join(ROOT, mount.source, configFile.slice((mount.target as string).length));
  if (!existsSync(hostFile)) return [...out, `prometheus: ${relative(ROOT, hostFile)} does not exist`];
  const prom = parseYaml(readFileSync(hostFile, 'utf8')) as { scrape_configs?: { job_name: string; static_configs?: { targets?: string[] }[] }[] };
  const job = prom.scrape_configs?.find((j) => j.job_name === 'switchyard-worker');
  const targets = job?.static_configs?.flatMap((x) => x.targets ?? []) ?? [];
  if (targets.length === 0) out.push(`prometheus: ${relative(ROOT, hostFile)} has no target in the job switchyard-worker`);
  for (const t of targets) {
    const [svc, port] = t.split(':');
    const s = c.services[svc];
    if (!s) {
      out.push(`prometheus scrapes ${t}, but there is no service "${svc}"`);
      continue;
    }
    const listen = metricsListen(s);
    if (!listen) out.push(`prometheus scrapes ${t}, but ${svc} serves no metrics (SWITCHYARD_METRICS or --metrics)`);
    else {
      const at = listen.lastIndexOf(':');
      const [host, lport] = [listen.slice(0, at), listen.slice(at + 1)];
      if (lport !== port) out.push(`prometheus scrapes ${t}, but ${svc} serves its metrics on ${listen}`);
      if (LOOPBACK.has(host) || host === 'localhost') out.push(`${svc}: metrics on ${listen}, which Prometheus cannot reach from the compose network`);
    }
  }
  return out;
}

// --- rule: the codec server ------------------------------------------------------------------------

const CODEC_KEY = '/run/secrets/switchyard_codec_key';

function codecServerProblems(c: ComposeFile, uiOrigins: readonly string[]): string[] {
  const s = c.services['codec-server'];
  if (!s) return ['no service "codec-server"'];
  const out: string[] = [];
  if (s.image !== undefined) out.push('codec-server: has an image; it is built from ./Dockerfile like the worker');
  const df = buildDockerfile(s);
  if (df !== join(ROOT, 'Dockerfile')) out.push(`codec-server: builds from ${df ? relative(ROOT, df) : 'nothing'}, not ./Dockerfile`);
  const entry = args(s.entrypoint);
  const listen = entry[entry.indexOf('--listen') + 1];
  if (entry.slice(0, 3).join(' ') !== 'node bin/switchyard.js codec-server' || !entry.includes('--listen') || !listen)
    return [...out, `codec-server: entrypoint ${JSON.stringify(entry)}, expected node bin/switchyard.js codec-server --listen 0.0.0.0:<port>`];
  const port = listen.slice(listen.lastIndexOf(':') + 1);
  if (listen.slice(0, listen.lastIndexOf(':')) !== '0.0.0.0')
    out.push(`codec-server: listens on ${listen}; in its container it must listen on 0.0.0.0 to be published`);
  const published = publishedAt(s, port);
  if (!published) out.push(`codec-server: its port ${port} is not published`);
  if (!grantedSecrets(s).has(CODEC_KEY)) out.push(`codec-server: not given the codec key (${CODEC_KEY})`);
  const mountProblem = topologyMountProblem('codec-server', s);
  if (mountProblem) out.push(mountProblem);
  if (!hasHealthcheck(c, 'codec-server') || !JSON.stringify(s.healthcheck?.test ?? '').includes('/healthz'))
    out.push('codec-server: no healthcheck of its /healthz');
  const ui = c.services['temporal-ui'];
  const endpoint = ui ? new Map(envEntries(ui)).get('TEMPORAL_CODEC_ENDPOINT') : undefined;
  if (published && endpoint !== `http://${published}`)
    out.push(`temporal-ui: TEMPORAL_CODEC_ENDPOINT is ${endpoint ?? 'unset'}, expected http://${published} (where the browser reaches the codec server)`);
  const uiAt = ui ? publishedAt(ui, String(new Map(envEntries(ui)).get('TEMPORAL_UI_PORT') ?? '8080')) : null;
  if (uiAt && !uiOrigins.includes(`http://${uiAt}`))
    out.push(`the example topology's temporal.codec.server.uiOrigins (${uiOrigins.join(', ') || 'none'}) lacks http://${uiAt}, where compose publishes the UI`);
  return out;
}

// --- the Dockerfile lint ------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
  line: number;
}

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i];
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++;
      const next = lines[i];
      line = line.replace(/\\\s*$/, ' ') + (/^\s*#/.test(next) ? '' : next);
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(line);
    if (m) out.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 });
  }
  return out;
}

export function dockerfileProblems(text: string): string[] {
  const out: string[] = [];
  const ins = dockerInstructions(text);
  const args = new Map<string, string>();
  const stages: string[] = [];
  let lastFrom = -1;
  ins.forEach((x, i) => {
    if (x.op === 'ARG' && lastFrom < 0) {
      const [k, v] = x.args.split('=', 2);
      if (v !== undefined) args.set(k.trim(), v.trim());
    }
    if (x.op === 'FROM') {
      lastFrom = i;
      const parts = x.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      const image = parts[0].replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, n: string) => args.get(n) ?? `$${n}`);
      if (!stages.includes(image)) {
        const p = imagePinProblem(image);
        if (p) out.push(`line ${x.line}: FROM ${p}`);
      }
      if (parts[1]?.toUpperCase() === 'AS' && parts[2]) stages.push(parts[2]);
    }
    if (x.op === 'ADD' && /(^|\s)(https?|git|ftp):\/\/|(^|\s)git@/i.test(x.args)) out.push(`line ${x.line}: ADD fetches from the network (${x.args})`);
  });
  const final = ins.slice(lastFrom + 1);
  const users = final.filter((x) => x.op === 'USER');
  const user = users.at(-1)?.args.split(':')[0];
  if (user === undefined) out.push('the final stage sets no USER: the worker would run as root');
  else if (user === 'root' || user === '0') out.push(`the final stage runs as ${user}`);
  const entry = final.filter((x) => x.op === 'ENTRYPOINT').at(-1);
  let entryArgs: unknown = null;
  try {
    entryArgs = entry ? JSON.parse(entry.args) : null;
  } catch {
    entryArgs = entry?.args ?? null;
  }
  if (JSON.stringify(entryArgs) !== JSON.stringify(['node', 'bin/switchyard.js', 'worker']))
    out.push(`ENTRYPOINT is ${JSON.stringify(entryArgs)}, expected ["node","bin/switchyard.js","worker"] (exec form)`);
  const hc = final.filter((x) => x.op === 'HEALTHCHECK').at(-1);
  if (!hc || /^NONE\b/i.test(hc.args)) out.push('the final stage has no HEALTHCHECK');
  const runs = ins.filter((x) => x.op === 'RUN').map((x) => x.args);
  const npm = runs.filter((r) => /\bnpm\s+(ci|install|i)\b/.test(r));
  if (npm.length === 0) out.push('no RUN installs the npm dependencies');
  for (const r of npm) if (!/--omit=dev\b/.test(r)) out.push(`npm runs without --omit=dev: ${r}`);
  for (const pkg of ['postgresql-client-15', 'openssh-client'])
    if (!runs.some((r) => /apt-get\s+install/.test(r) && new RegExp(`(^|\\s)${pkg}(\\s|$)`).test(r))) out.push(`no RUN installs the Debian package ${pkg}`);
  return out;
}

// --- .dockerignore and what the image holds ---------------------------------------------------------

function dockerignoreRules(text: string): { re: RegExp; negate: boolean }[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''));
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const ch = pattern[i];
        if (ch === '*' && pattern[i + 1] === '*') {
          re += '.*';
          i++;
        } else if (ch === '*') re += '[^/]*';
        else if (ch === '?') re += '[^/]';
        else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { re: new RegExp(`^${re}$`), negate };
    });
}

/** Whether the build context leaves `rel` out, by Docker's rules (last match wins; a directory's match covers its contents). */
export function dockerIgnored(rel: string, ignoreText: string): boolean {
  const parts = rel.split('/');
  const prefixes = parts.map((_p, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of dockerignoreRules(ignoreText)) {
    if (prefixes.some((p) => rule.re.test(p))) {
      ignored = !rule.negate;
    }
  }
  return ignored;
}

const ENTRY_POINTS = ['bin/switchyard.js', 'src/client/cli.ts', 'src/worker.ts', 'src/workflows/index.ts', 'deploy/worker-healthcheck.js'];

function resolveLocal(fromFile: string, spec: string): string | null {
  const base = resolve(dirname(fromFile), spec);
  const candidates = [base, `${base}.ts`, `${base}.js`, join(base, 'index.ts'), join(base, 'index.js')];
  if (spec.endsWith('.js')) candidates.push(base.replace(/\.js$/, '.ts'));
  return candidates.find((p) => existsSync(p) && statSync(p).isFile()) ?? null;
}

/** Files and packages reachable from the image's entry points; packages only through static imports. */
function importGraph(): { files: Set<string>; packages: Map<string, string>; unresolved: string[] } {
  const files = new Set<string>();
  const packages = new Map<string, string>(); // package -> first importer
  const unresolved: string[] = [];
  const queue = ENTRY_POINTS.map((e) => join(ROOT, e)).filter((p) => existsSync(p));
  while (queue.length > 0) {
    const file = queue.shift() as string;
    if (files.has(file)) continue;
    files.add(file);
    const src = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    const found: { spec: string; dynamic: boolean }[] = [];
    // import/export … from '…' (the clause holds no ';' or quote, so a match never runs into the
    // next statement); type-only imports are erased by tsx and load nothing.
    for (const m of src.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:([^;'"]*?)\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
      const typeOnly = m[1] !== undefined || (/^\{\s*type\s[^}]*\}$/.test((m[2] ?? '').trim()) && !/,\s*(?!type\s)[A-Za-z_$]/.test(m[2] ?? ''));
      if (!typeOnly) found.push({ spec: m[3], dynamic: false });
    }
    for (const m of src.matchAll(/\brequire(?:\.resolve)?\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ spec: m[1], dynamic: false });
    for (const m of src.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ spec: m[1], dynamic: true });
    for (const { spec, dynamic } of found) {
      if (spec.startsWith('.')) {
        const target = resolveLocal(file, spec);
        if (target) queue.push(target);
        else unresolved.push(`${relative(ROOT, file)}: ${spec}`);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec.split('/')[0]) && !dynamic) {
        const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (!packages.has(pkg)) packages.set(pkg, relative(ROOT, file));
      }
    }
  }
  return { files, packages, unresolved };
}

// =================================================================================================

describe('docker-compose.yml', () => {
  it('is valid by the Compose Specification JSON Schema', () => {
    assert.deepEqual(schemaProblems(compose), []);
  });

  it('schema validation rejects what compose would reject', () => {
    const problems = schemaProblems(
      broken((c) => {
        (c.services.worker as Record<string, unknown>).restrat = 'always';
        (c.services.temporal.depends_on as Record<string, { condition: string }>)['temporal-db'].condition = 'service_happy';
      }),
    );
    assert.ok(
      problems.some((p) => p.includes('"restrat"')),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith('/services/temporal/depends_on/temporal-db/condition must be equal to one of the allowed values')),
      problems.join('\n'),
    );
  });

  it('interpolates like compose', () => {
    assert.equal(interpolate('${A:-x}/${B-y}/${C:+z}/$$D/$E', { A: '', B: '', C: '1', E: 'e' }), 'x//z/$D/e');
    assert.throws(() => interpolate('${NEED:?set NEED}', {}), /NEED is missing: set NEED/);
  });

  it('pins every image to a version', () => {
    assert.deepEqual(imageProblems(compose), []);
    for (const [ref, why] of [
      ['postgres', /no tag/],
      ['postgres:latest', /latest/],
      ['postgres:15', /not a version/],
      ['registry.example:5000/postgres', /no tag/],
      ['temporalio/ui:${UI_VERSION:-2.55.0}', /variable/],
    ] as const)
      assert.match(imagePinProblem(ref) ?? 'pinned', why, ref);
    assert.equal(imagePinProblem('registry.example:5000/team/pg:15.18@sha256:' + 'a'.repeat(64)), null);
    assert.deepEqual(imageProblems(broken((c) => (c.services['temporal-ui'].image = 'temporalio/ui:latest'))), [
      'temporal-ui: image "temporalio/ui:latest" uses the tag "latest": pin a version',
    ]);
  });

  it('runs the Temporal server and its schema and setup jobs at one version', () => {
    const tag = (img: string | undefined) => img?.split(':')[1];
    const server = tag(compose.services.temporal.image);
    const tools = Object.values(compose.services).filter((s) => s.image?.startsWith('temporalio/admin-tools:'));
    assert.ok(server && tools.length >= 2);
    for (const t of tools) assert.equal(tag(t.image), server, `${t.image} does not match temporalio/server:${server}`);
  });

  it('gives every health-gated dependency a healthcheck, and lets one-shot jobs complete', () => {
    assert.deepEqual(dependencyProblems(compose), []);
    assert.deepEqual(
      dependencyProblems(
        broken((c) => {
          delete c.services['temporal-db'].healthcheck;
          c.services['temporal-setup'].restart = 'unless-stopped';
          (c.services.worker.depends_on as Record<string, { condition: string }>).ghost = { condition: 'service_started' };
        }),
      ).sort(),
      [
        'console waits for "temporal-setup" to complete, but "temporal-setup" restarts (unless-stopped) and never completes',
        'temporal waits for "temporal-db" to be healthy, but "temporal-db" has no healthcheck',
        'temporal-schema waits for "temporal-db" to be healthy, but "temporal-db" has no healthcheck',
        'worker depends on "ghost", which is not a service',
        'worker waits for "temporal-setup" to complete, but "temporal-setup" restarts (unless-stopped) and never completes',
      ],
    );
  });

  it('builds the worker from ./Dockerfile with the topology mounted read-only', () => {
    assert.deepEqual(workerProblems(compose), []);
    const problems = workerProblems(
      broken((c) => {
        c.services.worker.build = { context: '.', dockerfile: 'deploy/Other.Dockerfile' };
        const m = (c.services.worker.volumes ?? []).find((v): v is Mount => typeof v === 'object' && v.type === 'bind');
        if (m) m.read_only = false;
      }),
    );
    assert.deepEqual(problems, [
      'worker: builds from deploy/Other.Dockerfile, not ./Dockerfile',
      'worker: the topology at /etc/switchyard/switchyard.yaml must be a read-only bind mount',
    ]);
  });

  it('publishes every port on the loopback interface only', () => {
    assert.deepEqual(portProblems(compose), []);
    assert.deepEqual(
      portProblems(
        broken((c) => {
          c.services['temporal-ui'].ports = ['8080:8080'];
          c.services.prometheus.ports = [{ target: 9090, published: '9090' }];
          c.services['codec-server'].ports = ['0.0.0.0:8888:8888/tcp'];
        }),
      ),
      [
        'temporal-ui: port 8080:8080 is published on every interface; bind it to 127.0.0.1',
        'codec-server: port 0.0.0.0:8888:8888/tcp is published on every interface; bind it to 127.0.0.1',
        'prometheus: port {"target":9090,"published":"9090"} is published on every interface; bind it to 127.0.0.1',
      ],
    );
    assert.equal(publishedAt(compose.services.prometheus, '9090'), '127.0.0.1:9090');
  });

  it("runs Prometheus on deploy/prometheus (read-only), scraping the worker's metrics address", () => {
    assert.deepEqual(prometheusProblems(compose), []);
    assert.deepEqual(
      prometheusProblems(
        broken((c) => {
          (c.services.worker.environment as EnvMap).SWITCHYARD_METRICS = '127.0.0.1:9464';
          const m = (c.services.prometheus.volumes ?? []).find((v): v is Mount => typeof v === 'object' && v.type === 'bind');
          if (m) m.read_only = false;
          delete c.services.prometheus.healthcheck;
        }),
      ),
      [
        'prometheus: the mount of ./deploy/prometheus is writable; mount it read-only',
        'prometheus: no healthcheck',
        'worker: metrics on 127.0.0.1:9464, which Prometheus cannot reach from the compose network',
      ],
    );
    assert.deepEqual(prometheusProblems(broken((c) => delete (c.services.worker.environment as EnvMap).SWITCHYARD_METRICS)), [
      'prometheus scrapes worker:9464, but worker serves no metrics (SWITCHYARD_METRICS or --metrics)',
    ]);
  });

  it('runs the codec server built like the worker, with the codec key, and points the UI at it', () => {
    const example = parseTopology(read('deploy/switchyard.example.yaml'), 'deploy/switchyard.example.yaml');
    const origins = example.temporal?.codec?.server?.uiOrigins ?? [];
    assert.deepEqual(codecServerProblems(compose, origins), []);
    assert.deepEqual(
      codecServerProblems(
        broken((c) => {
          const s = c.services['codec-server'];
          s.entrypoint = ['node', 'bin/switchyard.js', 'codec-server', '--listen', '127.0.0.1:8888'];
          s.secrets = [];
          (c.services['temporal-ui'].environment as EnvMap).TEMPORAL_CODEC_ENDPOINT = 'http://codec-server:8888';
        }),
        ['http://localhost:8080'],
      ),
      [
        'codec-server: listens on 127.0.0.1:8888; in its container it must listen on 0.0.0.0 to be published',
        'codec-server: not given the codec key (/run/secrets/switchyard_codec_key)',
        'temporal-ui: TEMPORAL_CODEC_ENDPOINT is http://codec-server:8888, expected http://127.0.0.1:8888 (where the browser reaches the codec server)',
        "the example topology's temporal.codec.server.uiOrigins (http://localhost:8080) lacks http://127.0.0.1:8080, where compose publishes the UI",
      ],
    );
  });

  it('keeps every secret out of the environment: passwords and keys are secret files', () => {
    assert.deepEqual(secretProblems(compose), []);
    const problems = secretProblems(
      broken((c) => {
        (c.services['temporal-db'].environment as EnvMap).POSTGRES_PASSWORD = 'hunter2';
        (c.services.temporal.environment as EnvMap).POSTGRES_PWD = '${TEMPORAL_DB_PASSWORD}';
        (c.services['temporal-schema'].environment as EnvMap).SQL_PASSWORD_FILE = '/run/secrets/not_given';
        c.services.worker.env_file = ['.env'];
        (c.secrets as Record<string, { file?: string; environment?: string }>).switchyard_pg_password = { environment: 'PG_PASSWORD' };
      }),
    );
    assert.deepEqual(problems.sort(), [
      'secret switchyard_pg_password: not a file (file: ./deploy/secrets/switchyard_pg_password)',
      'temporal-db: POSTGRES_PASSWORD is set inline; give it as a secret file (POSTGRES_PASSWORD_FILE=/run/secrets/…)',
      'temporal-schema: SQL_PASSWORD_FILE=/run/secrets/not_given, but that secret is not given to temporal-schema',
      'temporal: POSTGRES_PWD is set inline; give it as a secret file (POSTGRES_PWD_FILE=/run/secrets/…)',
      'temporal: POSTGRES_PWD takes the secret-looking variable TEMPORAL_DB_PASSWORD into the environment',
      'worker: env_file may carry secrets into the environment; use secrets',
    ]);
  });

  it('keeps the secret files out of git', (t) => {
    if (!existsSync(join(ROOT, '.git'))) return t.skip('not a git checkout');
    for (const [name, def] of Object.entries(compose.secrets ?? {})) {
      const r = spawnSync('git', ['check-ignore', '-q', def.file as string], { cwd: ROOT });
      assert.equal(r.status, 0, `secret ${name}: ${def.file} is not git-ignored`);
    }
  });

  it('mounts the scripts the services run', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      const entry = Array.isArray(s.entrypoint) ? s.entrypoint : [];
      for (const arg of entry.filter((a) => a.endsWith('.sh'))) {
        const m = (s.volumes ?? []).find((v): v is Mount => typeof v === 'object' && v.type === 'bind' && !!v.target && arg.startsWith(`${v.target}/`));
        assert.ok(m && m.source, `${name}: ${arg} is not in a bind mount`);
        assert.ok(m.read_only, `${name}: the mount holding ${arg} is writable`);
        assert.ok(existsSync(join(ROOT, m.source, arg.slice((m.target as string).length))), `${name}: ${arg} does not exist in ${m.source}`);
      }
    }
  });

  it('registers exactly the search attributes the workflows use', () => {
    const script = read('deploy/temporal/setup-namespace.sh');
    const m = /SEARCH_ATTRIBUTES=\$\{SWITCHYARD_SEARCH_ATTRIBUTES:-([^}]*)\}/.exec(script);
    assert.ok(m, 'setup-namespace.sh has no default SEARCH_ATTRIBUTES');
    assert.deepEqual(m[1].split(/\s+/).sort(), SEARCH_ATTRIBUTES.map((k) => k.name).sort());
    assert.ok(
      SEARCH_ATTRIBUTES.every((k) => k.type === 'KEYWORD'),
      'setup-namespace.sh registers Keyword attributes only',
    );
    assert.match(compose.services['temporal-setup'].entrypoint?.toString() ?? '', /setup-namespace\.sh/);
  });

  it('runs `docker compose config` cleanly when the compose plugin is installed', (t) => {
    const version = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
    if (version.error || version.status !== 0) return t.skip('no docker CLI with the compose plugin on this machine');
    const env = { ...process.env, TEMPORAL_NAMESPACE: '', SWITCHYARD_TOPOLOGY: '', SWITCHYARD_RETENTION: '' };
    const ok = spawnSync('docker', ['compose', '-f', 'docker-compose.yml', 'config', '--quiet'], { cwd: ROOT, encoding: 'utf8', env });
    assert.equal(ok.status, 0, `docker compose config failed:\n${ok.stderr}`);
    // and it does reject a broken file (a dependency on a service that does not exist)
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-compose-'));
    try {
      const bad = join(dir, 'docker-compose.yml');
      writeFileSync(
        bad,
        composeText.replace(
          '      temporal-setup:\n        condition: service_completed_successfully',
          '      ghost:\n        condition: service_completed_successfully',
        ),
      );
      const r = spawnSync('docker', ['compose', '--project-directory', ROOT, '-f', bad, 'config', '--quiet'], { cwd: ROOT, encoding: 'utf8', env });
      assert.notEqual(r.status, 0, 'docker compose config accepted a dependency on a missing service');
      assert.match(r.stderr, /ghost/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Dockerfile and .dockerignore', () => {
  it('passes the lint: pinned FROM, non-root USER, no remote ADD, the worker entrypoint, a HEALTHCHECK', () => {
    assert.deepEqual(dockerfileProblems(dockerfileText), []);
  });

  it('the lint catches a broken Dockerfile', () => {
    const bad = dockerfileText
      .replace(/^FROM node:[^\s]+ AS runtime$/m, 'FROM node:latest AS runtime')
      .replace(/^USER switchyard$/m, 'USER root')
      .replace(/--omit=dev /, '')
      .replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT node bin/switchyard.js worker\nADD https://example.com/x.tgz /tmp/');
    const lineOf = (start: string) => bad.split('\n').findIndex((l) => l.startsWith(start)) + 1;
    const problems = dockerfileProblems(bad);
    const expected = [
      `line ${lineOf('FROM node:latest')}: FROM "node:latest" uses the tag "latest": pin a version`,
      `line ${lineOf('ADD https')}: ADD fetches from the network (https://example.com/x.tgz /tmp/)`,
      'the final stage runs as root',
      'ENTRYPOINT is "node bin/switchyard.js worker", expected ["node","bin/switchyard.js","worker"] (exec form)',
    ];
    for (const e of expected) assert.ok(problems.includes(e), `missing "${e}" in:\n${problems.join('\n')}`);
    assert.ok(
      problems.some((p) => p.startsWith('npm runs without --omit=dev: npm install')),
      problems.join('\n'),
    );
    assert.equal(problems.length, expected.length + 1, problems.join('\n'));
    assert.deepEqual(dockerfileProblems('FROM debian\nRUN true\n').slice(0, 2), [
      'line 1: FROM "debian" has no tag: pin a version such as name:1.2.3',
      'the final stage sets no USER: the worker would run as root',
    ]);
  });

  it('.dockerignore keeps local state, tools, history and secrets out of the build context', () => {
    const ignore = read('.dockerignore');
    for (const p of ['node_modules', '.tools', '.sandbox', '.git', 'node_modules/pg/index.js', 'deploy/secrets/switchyard_ssh_key', 'switchyard.yaml'])
      assert.ok(dockerIgnored(p, ignore), `${p} would be sent to the build`);
    for (const p of ['package.json', 'package-lock.json', 'bin/switchyard.js', 'src/worker.ts', 'deploy/worker-healthcheck.js'])
      assert.ok(!dockerIgnored(p, ignore), `${p} would be left out of the image`);
  });

  it('the image holds every file and production package the worker and the CLI load', (t) => {
    if (!existsSync(join(ROOT, 'src/worker.ts'))) return t.skip('src/worker.ts does not exist yet');
    const ignore = read('.dockerignore');
    const { files, packages, unresolved } = importGraph();
    assert.deepEqual(unresolved, [], 'relative imports that resolve to no file');
    const missing = [...files].map((f) => relative(ROOT, f)).filter((f) => dockerIgnored(f, ignore));
    assert.deepEqual(missing, [], 'loaded by the worker or the CLI but left out by .dockerignore');
    // what `npm install --omit=dev` installs: the lock file's packages not marked dev
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
    const notInImage = [...packages].filter(([pkg]) => {
      const entry = lock.packages[`node_modules/${pkg}`];
      return !entry || entry.dev === true;
    });
    assert.deepEqual(notInImage, [], 'imported at load time but not a production dependency (package, importer)');
    assert.ok(files.size > 5 && packages.has('@temporalio/worker'), `the import scan found too little: ${files.size} files`);
  });
});

describe('deploy/', () => {
  it('the vendored Compose schema is the file its README names', () => {
    const readme = read('deploy/schema/README.md');
    const sha = /sha256 of compose-spec\.json: `([0-9a-f]{64})`/.exec(readme)?.[1];
    assert.ok(sha, 'deploy/schema/README.md records no sha256');
    assert.equal(
      createHash('sha256')
        .update(readFileSync(join(ROOT, SCHEMA_FILE)))
        .digest('hex'),
      sha,
    );
    assert.match(readme, /module: `github\.com\/compose-spec\/compose-go\/v2`/);
    assert.equal(composeSchema.title, 'Compose Specification');
    assert.ok(existsSync(join(ROOT, 'deploy/schema/LICENSE')) && existsSync(join(ROOT, 'deploy/schema/NOTICE')));
  });

  it('the example topology loads, and takes every secret from a file compose gives the worker', () => {
    const text = read('deploy/switchyard.example.yaml');
    parseTopology(text, 'deploy/switchyard.example.yaml');
    const secretRefs = (root: unknown): { file?: string; env?: string }[] => {
      const found: { file?: string; env?: string }[] = [];
      const walk = (v: unknown) => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === 'object') {
          const o = v as Record<string, unknown>;
          const keys = Object.keys(o);
          if (keys.length === 1 && (keys[0] === 'file' || keys[0] === 'env') && typeof o[keys[0]] === 'string')
            found.push(o as { file?: string; env?: string });
          else Object.values(o).forEach(walk);
        }
      };
      walk(root);
      return found;
    };
    const doc = parseYaml(text) as { temporal?: { codec?: { keys?: unknown } } };
    const refs = secretRefs(doc);
    const codecKeys = new Set(secretRefs(doc.temporal?.codec?.keys).map((r) => r.file));
    const granted = grantedSecrets(compose.services.worker);
    const toConsole = grantedSecrets(compose.services.console);
    const toCodec = grantedSecrets(compose.services['codec-server']);
    const usedByEnv = new Set(envEntries(compose.services.worker).map(([, v]) => v));
    assert.ok(refs.length >= 3, 'the example names too few secrets');
    assert.ok(codecKeys.has(CODEC_KEY), `the example's temporal.codec.keys do not read ${CODEC_KEY}`);
    for (const r of refs) {
      assert.equal(r.env, undefined, `the example takes a secret from the environment variable ${r.env}; compose gives files`);
      // The console's own key goes to the console alone; the codec's keys to every process that
      // reads or writes payloads (worker, console, codec server); every other secret is the worker's.
      if (r.file === '/run/secrets/switchyard_console_key') assert.ok(toConsole.has(r.file), 'compose does not give the console its signing key');
      else assert.ok(r.file && granted.has(r.file), `the example reads ${r.file}, which compose does not give the worker`);
      if (codecKeys.has(r.file)) {
        assert.ok(toConsole.has(r.file as string), `the console reads runs from Temporal but is not given the codec key ${r.file}`);
        assert.ok(toCodec.has(r.file as string), `the codec server is not given the codec key ${r.file}`);
      }
    }
    assert.ok(!granted.has('/run/secrets/switchyard_console_key'), "the worker is given the console's signing key: it must never sign decisions");
    for (const path of granted.keys()) assert.ok(refs.some((r) => r.file === path) || usedByEnv.has(path), `the worker is given ${path}, but nothing reads it`);
    for (const path of toCodec.keys()) assert.ok(codecKeys.has(path), `the codec server is given ${path}, which is no codec key`);
  });

  it('init-secrets.sh makes every secret file compose names, the codec key as 64 hex digits, kept on a second run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-secrets-'));
    try {
      writeFileSync(join(dir, 'init-secrets.sh'), read('deploy/init-secrets.sh'));
      writeFileSync(join(dir, 'ssh_key'), 'not a real key\n');
      // Without openssl the console's key cannot be made here: stand one in (the script keeps it).
      const haveOpenssl = spawnSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).status === 0;
      if (!haveOpenssl) {
        mkdirSync(join(dir, 'secrets'));
        writeFileSync(join(dir, 'secrets/switchyard_console_key'), 'stand-in');
      }
      const env = {
        ...process.env,
        SWITCHYARD_SSH_KEY_FILE: join(dir, 'ssh_key'),
        SWITCHYARD_PG_PASSWORD: 'pg-password',
        SWITCHYARD_PG_REPLICATION_PASSWORD: 'replication-password',
      };
      const run = () => spawnSync('sh', [join(dir, 'init-secrets.sh')], { encoding: 'utf8', env });
      const first = run();
      assert.equal(first.status, 0, `${first.stdout}${first.stderr}`);
      for (const [name, def] of Object.entries(compose.secrets ?? {}))
        assert.ok(existsSync(join(dir, 'secrets', posix.basename(def.file as string))), `init-secrets.sh does not make ${def.file} (secret ${name})`);
      const key = readFileSync(join(dir, 'secrets/switchyard_codec_key'), 'utf8');
      assert.match(key, /^[0-9a-f]{64}$/, 'the codec key is not 64 hex digits without a newline');
      assert.match(first.stdout, /wrote switchyard_codec_key/);
      const second = run();
      assert.equal(second.status, 0, `${second.stdout}${second.stderr}`);
      assert.equal(readFileSync(join(dir, 'secrets/switchyard_codec_key'), 'utf8'), key, 'a second run replaced the codec key');
      assert.doesNotMatch(second.stdout, /wrote switchyard_codec_key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every shell script parses', () => {
    const scripts = [
      'deploy/init-secrets.sh',
      'deploy/schema/update.sh',
      ...readdirSync(join(ROOT, 'deploy/temporal'))
        .filter((f) => f.endsWith('.sh'))
        .map((f) => `deploy/temporal/${f}`),
    ];
    for (const s of scripts) {
      assert.match(read(s), /^#!\/bin\/sh\n/, `${s}: expected a POSIX sh script (Temporal's images are Alpine: no bash)`);
      const r = spawnSync('sh', ['-n', join(ROOT, s)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${s}: ${r.stderr}`);
    }
  });
});
