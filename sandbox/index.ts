/**
 * The sandbox: two data centres on one machine, all on loopback (DESIGN.md section 4).
 *
 *   sandboxUp      start whatever is not running (first time: create everything), write the topology
 *   sandboxDown    stop everything, sweep leftovers, remove the directory
 *   sandboxStatus  real liveness of every part (pid alive, not paused, port answering)
 *   stopPart / startPart   fault injection for tests (a part, a host such as "dc1-db", or a site "dc1")
 *
 * Part names: temporal, ec2, front, shared/sshd, dc1-db/postgres, dc1-db/sshd, dc1-app/sshd,
 * dc1-app/app, dc1-app/fault-detection, dc1-app/notification, and the same for dc2.
 */
import { cutFromWorker, healSync } from './partition';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, lchownSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { Socket } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ec2Endpoint, seedEc2 } from './ec2';
import { seedS3, STORE_BUCKET, STORE_PREFIX } from './s3';
import {
  checkNet,
  defaultDir,
  makeLayout,
  ownsSocket,
  PORTS,
  SEARCH_ATTRIBUTES,
  SERVICES,
  type AppLayout,
  type DbLayout,
  type Layout,
  type PartKind,
  type PartSpec,
  codecEndpoint,
} from './layout';
import { ensurePrimaryNode, ensureStandbyNode, pgHbaConf, pgIdentConf, postgresqlConf, postmasterPid, stopNode, type PgContext } from './postgres';
import {
  baseEnv,
  describeRun,
  descendantsOf,
  findSandboxProcesses,
  isAlive,
  isPaused,
  readProc,
  resolveRunAs,
  selfRunAs,
  run,
  signalGroup,
  signalPid,
  sleep,
  sleepSync,
  socketOwners,
  listProcs,
  spawnDetached,
  tail,
  tcpBanner,
  tcpProbe,
  type RunAs,
  type SweepSpec,
} from './procs';
import { sshdConfig } from './sshd-config';
import { readState, withLock, writeState, type SandboxState } from './state';
import { sandboxAccess } from './access';
import { appConfFile, caDir, caSetKeyFile, dnsCommand, dnsRecordFile, svcCommand, writeTopology } from './topology';
import { loadTools as loadBaseTools, type Tools as BaseTools } from '../src/tools';

export interface SandboxOptions {
  dir?: string;
  net?: number;
  /** default 'demo' */
  cluster?: string;
}

export interface SandboxPart {
  name: string;
  site: string | null;
  kind: PartKind;
  host: string;
  port: number;
  pid: number | null;
  state: 'running' | 'stopped';
  /** postgres parts: a URL psql and node-postgres can connect with; app: its URL; ec2: the endpoint; temporal: the UI */
  url?: string;
  /**
   * What it should be: "running", except a service that is not enabled (the standby site's
   * services are stopped by design, and what a runbook stopped stays stopped).
   */
  expected: 'running' | 'stopped';
  /** Why it is stopped, e.g. "paused (SIGSTOP), pid 123", "not running", "stopped (not enabled)". */
  detail?: string;
}

export interface SandboxStatus {
  /** path of the generated topology */
  config: string;
  /** codecEndpoint: the codec server the UI decrypts payloads through (`temporal --codec-endpoint` takes it too). */
  temporal: { address: string; ui: string; codecEndpoint: string };
  /** Where `switchyard console` listens for this sandbox, and the file with its operators' passwords (0600). */
  console: { url: string; operators: string };
  parts: SandboxPart[];
}

export type StopHow = 'stop' | 'kill' | 'pause';

const REPO = resolve(__dirname, '..');
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const noop = (): void => undefined;

// ---------------------------------------------------------------------------------------------
// Tools (from scripts/setup.sh)

type Tools = BaseTools & { node: string };

function loadTools(): Tools {
  try {
    return { ...loadBaseTools(), node: process.execPath };
  } catch (err) {
    throw new Error(`sandbox: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Where a sandbox is

export function sandboxDirFor(opts: SandboxOptions = {}): string {
  const net = checkNet(opts.net ?? 0);
  return resolve(opts.dir ?? defaultDir(net));
}

interface Target {
  l: Layout;
  state: SandboxState | null;
}

function target(opts: SandboxOptions = {}, lenient = false): Target {
  const dir = sandboxDirFor(opts);
  let state: SandboxState | null;
  try {
    state = readState(join(dir, 'state.json'));
  } catch (err) {
    if (!lenient) throw err;
    state = null; // down and the exit-time kill must work even on a damaged state file
  }
  if (state && opts.net !== undefined && opts.net !== state.net) throw new Error(`sandbox: ${dir} was made with net ${state.net}, not ${opts.net}`);
  if (state && opts.cluster !== undefined && opts.cluster !== state.cluster)
    throw new Error(`sandbox: ${dir} was made for cluster "${state.cluster}", not "${opts.cluster}"`);
  const cluster = state?.cluster ?? opts.cluster ?? 'demo';
  if (!NAME_RE.test(cluster)) throw new Error(`sandbox: cluster must be a name of lowercase letters, digits, "-" or "_", got ${JSON.stringify(cluster)}`);
  const l = makeLayout(dir, state?.net ?? checkNet(opts.net ?? 0), cluster);
  if (l.dbs[0].socketDir.length + '/.s.PGSQL.5432'.length > 100)
    throw new Error(`sandbox: ${dir} is too long a path (unix sockets under it would exceed ~100 characters); choose a shorter dir`);
  return { l, state };
}

interface Ctx {
  l: Layout;
  runAs: RunAs;
  tools: Tools;
  state: SandboxState;
  log: (line: string) => void;
}

function pgCtx(ctx: Ctx): PgContext {
  return { l: ctx.l, runAs: ctx.runAs, tools: { binDir: ctx.tools.pgBinDir }, log: ctx.log, mayCreate: !ctx.state.initialized };
}

function save(ctx: Ctx): void {
  writeState(ctx.l.stateFile, ctx.state);
}

// ---------------------------------------------------------------------------------------------
// Files

function own(ctx: Pick<Ctx, 'runAs'>, path: string): void {
  if (ctx.runAs.switching) chownSync(path, ctx.runAs.uid, ctx.runAs.gid);
}

function mkdirOwned(ctx: Pick<Ctx, 'runAs'>, path: string, mode = 0o755): void {
  mkdirSync(path, { recursive: true, mode });
  chmodSync(path, mode);
  own(ctx, path);
}

/** Write when missing or different; owned by the run-as user. */
function writeOwned(ctx: Pick<Ctx, 'runAs'>, path: string, content: string, mode = 0o644): void {
  let same = false;
  try {
    same = readFileSync(path, 'utf8') === content;
  } catch {
    /* missing */
  }
  if (!same) writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  own(ctx, path);
}

function secretFile(ctx: Pick<Ctx, 'runAs'>, path: string, make: () => string): string {
  if (!existsSync(path)) writeFileSync(path, make() + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  own(ctx, path);
  return readFileSync(path, 'utf8').trim();
}

function haproxyConfig(l: Layout): string {
  const [dc1, dc2] = l.dbs;
  return `# switchyard sandbox: the traffic front (a VIP / DNS stand-in) clients use to reach "the primary".
# Drivers move traffic through the runtime API, e.g.
#   echo "set server postgres/dc2 state ready" | nc ${l.shared} ${PORTS.frontAdmin}
# There are no health checks: traffic moves only when a driver or a person moves it.
global
    maxconn 512
    stats socket ipv4@${l.shared}:${PORTS.frontAdmin} level admin
    stats timeout 2m
    server-state-file ${l.frontState}

defaults
    mode tcp
    # A connection that finds its server down is retried, each retry on the server the balancer
    # picks then: a client that connects while traffic moves lands on the new primary. HAProxy
    # waits min(timeout connect, 1 s) before a retry: on loopback a connect takes well under a
    # millisecond, so 100 ms, 20 times, bridges a 2 s move without holding a client 1 s a retry.
    timeout connect 100ms
    retries 20
    option redispatch 1
    timeout client 1h
    timeout server 1h
    load-server-state-from-file global

frontend postgres_front
    bind ${l.shared}:${PORTS.front}
    default_backend postgres

backend postgres
    balance first
    server ${dc1.site} ${dc1.address}:${PORTS.postgres}
    server ${dc2.site} ${dc2.address}:${PORTS.postgres} disabled
`;
}

async function keygen(ctx: Ctx, file: string, comment: string): Promise<void> {
  if (existsSync(file) && existsSync(`${file}.pub`)) return;
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  const r = await run(ctx.tools.sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { runAs: ctx.runAs, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`sandbox: ${describeRun('ssh-keygen', r)}`);
}

/** Directories, secrets, keys, configuration files and scripts: everything that is not a process. */
async function prepare(ctx: Ctx): Promise<void> {
  const { l } = ctx;
  mkdirOwned(ctx, l.dir);
  if (ctx.runAs.switching) {
    const r = await run('/usr/bin/test', ['-w', l.dir, '-a', '-x', l.dir], { runAs: ctx.runAs });
    if (r.code !== 0)
      throw new Error(
        `sandbox: ${l.dir} is not reachable by the run-as user "${ctx.runAs.user}": let it search every parent directory (chmod o+x), or choose another dir`,
      );
  }
  for (const d of [l.logsDir, l.binDir, l.sshDir, l.backupsDir, l.frontDir, l.ec2Dir]) mkdirOwned(ctx, d);
  mkdirOwned(ctx, l.secretsDir, 0o700);
  for (const h of l.hosts) mkdirOwned(ctx, h.dir);
  for (const db of l.dbs) {
    mkdirOwned(ctx, db.configDir);
    mkdirOwned(ctx, db.socketDir, 0o700);
  }
  for (const a of l.apps) mkdirOwned(ctx, a.svcDir);
  mkdirOwned(ctx, dirname(dnsRecordFile(l)));

  for (const f of ['app.cjs', 'svc.cjs', 'service.cjs', 'dns.cjs', 'repoint-app.cjs', 'stonith.cjs']) {
    const dest = join(l.binDir, f);
    copyFileSync(join(REPO, 'sandbox', 'bin', f), dest);
    chmodSync(dest, 0o755);
    own(ctx, dest);
  }

  const hex = (n: number) => randomBytes(n).toString('hex');
  const pgPw = secretFile(ctx, l.secrets.pgPassword, () => hex(16));
  const replPw = secretFile(ctx, l.secrets.replPassword, () => hex(16));
  // Both roles, so anything running as the run-as user (pg_basebackup, pg_rewind over ssh, the
  // standby's walreceiver through primary_conninfo passfile=…) finds its password here.
  writeOwned(ctx, l.secrets.pgpass, `*:*:*:replicator:${replPw}\n*:*:*:switchyard:${pgPw}\n`, 0o600);
  secretFile(ctx, l.secrets.awsAccessKeyId, () => `AKIA${hex(8).toUpperCase()}`);
  secretFile(ctx, l.secrets.awsSecretAccessKey, () => randomBytes(30).toString('base64'));
  secretFile(ctx, l.secrets.codecKey, () => hex(32));

  await Promise.all([keygen(ctx, l.secrets.sshKey, `switchyard-sandbox@${l.cluster}`), ...l.hosts.map((h) => keygen(ctx, h.hostKey, h.name))]);
  chmodSync(l.secrets.sshKey, 0o600);
  writeOwned(ctx, l.authorizedKeys, readFileSync(`${l.secrets.sshKey}.pub`, 'utf8'));
  for (const h of l.hosts)
    writeOwned(
      ctx,
      h.sshdConfig,
      sshdConfig({
        comment: `switchyard sandbox: sshd of host ${h.name} (${h.site ? `site ${h.site}` : 'shared, no site'}), running as ${ctx.runAs.user}.`,
        listen: `${h.address}:${PORTS.sshd}`,
        hostKey: h.hostKey,
        pidFile: join(h.dir, 'sshd.pid'),
        authorizedKeys: l.authorizedKeys,
        user: ctx.runAs.user,
      }),
    );
  for (const db of l.dbs) {
    // The file a rejoin copies from the primary's host (configFiles); written only when missing.
    const appConf = appConfFile(l, db.node);
    mkdirOwned(ctx, dirname(appConf));
    if (!existsSync(appConf)) writeOwned(ctx, appConf, `# switchyard sandbox: application config of host ${db.node}\nhost = ${db.node}\n`);
    writeOwned(ctx, join(db.configDir, 'postgresql.conf'), postgresqlConf(db));
    writeOwned(ctx, join(db.configDir, 'pg_hba.conf'), pgHbaConf(), 0o640);
    writeOwned(ctx, join(db.configDir, 'pg_ident.conf'), pgIdentConf(ctx.runAs), 0o640);
  }
  // The file set "ca" (backup.files.ca): a CA's key pair, made once; the private key 0600, a symlink to the public half.
  const ca = caDir(l);
  mkdirOwned(ctx, ca, 0o750);
  if (!existsSync(join(ca, 'ca.key'))) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeOwned(ctx, join(ca, 'ca.key'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
    writeOwned(ctx, join(ca, 'ca.pub.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(), 0o644);
  }
  const link = join(ca, 'current.pem');
  try {
    lstatSync(link);
  } catch {
    symlinkSync('ca.pub.pem', link);
  }
  if (ctx.runAs.switching) lchownSync(link, ctx.runAs.uid, ctx.runAs.gid);
  secretFile(ctx, caSetKeyFile(l), () => randomBytes(32).toString('base64'));
  writeOwned(ctx, l.frontConfig, haproxyConfig(l));
  writeTopology(l, ctx.runAs, { pgBinDir: ctx.tools.pgBinDir, node: ctx.tools.node }, await sandboxAccess(l));
  await ensureDnsRecord(ctx);
}

/**
 * The "dns" driver's record points at the preferred primary's database when first made (or when
 * it is missing or unreadable); left where it is afterwards (a runbook moved it). Written by the
 * driver's own script, as the run-as user, so it is the same format and owner as a move makes.
 */
async function ensureDnsRecord(ctx: Ctx): Promise<void> {
  const file = dnsRecordFile(ctx.l);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    /* missing */
  }
  if (/^\S+ \S+:\d+\n?$/.test(text)) return;
  const db = ctx.l.dbs[0];
  const argv = dnsCommand(ctx.l, ctx.tools, 'set', db.site, db.address, String(PORTS.postgres));
  const r = await run(argv[0], argv.slice(1), { runAs: ctx.runAs, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`sandbox: ${describeRun('dns.cjs set', r)}`);
  ctx.log(`dns: ${file} points at ${db.site} (${db.address}:${PORTS.postgres})`);
}

// ---------------------------------------------------------------------------------------------
// Processes of parts

function partError(spec: PartSpec, what: string): Error {
  const t = tail(spec.log);
  return new Error(`${spec.name}: ${what}${t ? `\n--- last lines of ${spec.log} ---\n${t}` : `\n(${spec.log} is empty)`}`);
}

function recorded(state: SandboxState | null, name: string): number | null {
  const r = state?.procs[name];
  return r && isAlive(r.pid, r.startTime) ? r.pid : null;
}

function record(ctx: Ctx, name: string, pid: number): void {
  const p = readProc(pid);
  ctx.state.procs[name] = { pid, startTime: p?.startTime ?? '' };
  save(ctx);
}

function servicePid(app: AppLayout, svc: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(app.svcDir, `${svc}.pid`), 'utf8').trim());
  } catch {
    return null;
  }
  const p = Number.isInteger(pid) && pid > 0 ? readProc(pid) : null;
  if (!p || p.state === 'Z' || p.state === 'X') return null;
  return p.argv.some((a) => a.endsWith('/service.cjs')) && p.argv.includes(svc) ? pid : null;
}

/**
 * A host powered off by its STONITH command (sandbox/bin/stonith.cjs leaves <host dir>/powered-off):
 * like a machine whose power was cut, it does not come back by itself: `up` and startPart leave
 * its parts stopped until powerOn.
 */
export const POWERED_OFF_FLAG = 'powered-off';
function poweredOff(l: Layout, hostName: string): boolean {
  const h = l.hosts.find((x) => x.name === hostName);
  return h !== undefined && existsSync(join(h.dir, POWERED_OFF_FLAG));
}

function dbOf(l: Layout, spec: PartSpec): DbLayout {
  return l.dbs.find((d) => d.node === spec.hostName)!;
}
function appOf(l: Layout, spec: PartSpec): AppLayout {
  return l.apps.find((a) => a.host === spec.hostName)!;
}
function serviceName(spec: PartSpec): string {
  return spec.name.split('/')[1];
}

/** The pid standing for a part (the postmaster, the service process, or what up started). */
function pidOf(l: Layout, state: SandboxState | null, spec: PartSpec): number | null {
  if (spec.kind === 'postgres') return postmasterPid(dbOf(l, spec));
  if (spec.kind === 'service') return servicePid(appOf(l, spec), serviceName(spec));
  return recorded(state, spec.name);
}

async function answers(spec: PartSpec): Promise<boolean> {
  if (spec.kind === 'service') return true;
  if (spec.kind === 'sshd') return (await tcpBanner(spec.address, spec.port, 1500))?.startsWith('SSH-') ?? false;
  return tcpProbe(spec.address, spec.port, 1000);
}

function httpStatus(url: string, timeoutMs = 1500): Promise<number | null> {
  return new Promise((resolveStatus) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolveStatus(res.statusCode ?? null);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolveStatus(null));
    req.end();
  });
}

/** Who else holds address:port (for a clear message when a port is taken). */
function holderOf(address: string, port: number): string {
  const procs = listProcs();
  const pids = [...socketOwners((a, p) => a === address && p === port, procs)];
  if (pids.length === 0) return 'another process';
  return pids
    .map((pid) => {
      const p = procs.find((x) => x.pid === pid);
      return `pid ${pid} (${(p?.argv ?? []).join(' ').slice(0, 160)})`;
    })
    .join(', ');
}

interface SpawnPlan {
  cmd: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Run as the current user rather than the run-as user (shared services, not "hosts"). */
  asSelf?: boolean;
  /** Ready when this resolves true; polled. */
  ready: (pid: number) => Promise<boolean>;
  timeoutMs: number;
}

async function startSpawned(ctx: Ctx, spec: PartSpec, plan: SpawnPlan): Promise<number> {
  if (spec.port && (await tcpProbe(spec.address, spec.port, 500)))
    throw partError(spec, `${spec.address}:${spec.port} is already in use by ${holderOf(spec.address, spec.port)}`);
  const t0 = Date.now();
  let pid: number;
  try {
    pid = await spawnDetached(plan.cmd, plan.args, { runAs: plan.asSelf ? selfRunAs() : ctx.runAs, log: spec.log, cwd: plan.cwd, env: plan.env });
  } catch (err) {
    throw partError(spec, (err as Error).message);
  }
  record(ctx, spec.name, pid);
  for (;;) {
    if (!isAlive(pid)) throw partError(spec, `exited right after start (${[plan.cmd, ...plan.args].join(' ')})`);
    if (await plan.ready(pid)) break;
    if (Date.now() - t0 > plan.timeoutMs) {
      signalGroup(pid, 'SIGKILL');
      throw partError(spec, `not ready ${Math.round(plan.timeoutMs / 1000)} s after start (pid ${pid}); killed it`);
    }
    await sleep(100);
  }
  ctx.log(`${spec.name}: started (pid ${pid}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return pid;
}

function cleanClientEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: homedir(), LANG: 'C.UTF-8' };
}

function temporalPlan(ctx: Ctx): SpawnPlan {
  const { l, tools } = ctx;
  const t = l.temporal;
  return {
    cmd: tools.temporal,
    args: [
      'server',
      'start-dev',
      '--ip',
      t.host,
      '--port',
      String(t.port),
      '--ui-ip',
      t.uiHost,
      '--ui-port',
      String(t.uiPort),
      '--db-filename',
      l.temporalDb,
      '--log-level',
      'warn',
      '--ui-disable-news-fetch',
      // The UI decrypts payloads through the sandbox's codec server (the browser calls it).
      '--ui-codec-endpoint',
      codecEndpoint(l),
      // A sandbox's history outlives a restart of the server but not a crash of the machine: no
      // fsync per write (a third less CPU for the server, and runs finish sooner on a busy disk).
      '--sqlite-pragma',
      'journal_mode=wal',
      '--sqlite-pragma',
      'synchronous=off',
      ...SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', `${a}=Keyword`]),
    ],
    cwd: l.dir,
    asSelf: true,
    timeoutMs: 90_000,
    // "SERVING" from cluster health is not enough (the frontend answers before it can reach
    // history): describing a workflow that does not exist goes all the way and says "not found".
    ready: async () => {
      if (!(await tcpProbe(t.host, t.port, 500))) return false;
      const r = await run(
        tools.temporal,
        ['workflow', 'describe', '--address', t.address, '--workflow-id', 'switchyard-sandbox-probe', '--command-timeout', '3s'],
        {
          env: cleanClientEnv(),
          timeoutMs: 10_000,
        },
      );
      return /not found/i.test(r.stderr + r.stdout);
    },
  };
}

async function checkSearchAttributes(ctx: Ctx, spec: PartSpec): Promise<void> {
  const r = await run(ctx.tools.temporal, ['operator', 'search-attribute', 'list', '--address', ctx.l.temporal.address, '-o', 'json'], {
    env: cleanClientEnv(),
    timeoutMs: 15_000,
  });
  if (r.code !== 0) throw partError(spec, `cannot list search attributes: ${describeRun('temporal', r)}`);
  const missing = SEARCH_ATTRIBUTES.filter((a) => !r.stdout.includes(`"${a}"`));
  if (missing.length) throw partError(spec, `search attributes not registered: ${missing.join(', ')}`);
}

function motoPlan(ctx: Ctx): SpawnPlan {
  const { l, tools } = ctx;
  return {
    cmd: tools.motoServer,
    args: ['-H', l.shared, '-p', String(PORTS.ec2)],
    cwd: l.ec2Dir,
    asSelf: true,
    env: baseEnv(selfRunAs(), { HOME: l.ec2Dir, MOTO_EC2_LOAD_DEFAULT_AMIS: 'false', PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' }),
    timeoutMs: 60_000,
    ready: async () => (await httpStatus(`${ec2Endpoint(l)}/moto-api/`)) === 200,
  };
}

function frontPlan(ctx: Ctx): SpawnPlan {
  const { l, tools } = ctx;
  return {
    cmd: tools.haproxy,
    args: ['-db', '-f', l.frontConfig],
    cwd: l.frontDir,
    asSelf: true,
    timeoutMs: 15_000,
    ready: async () => (await tcpProbe(l.shared, PORTS.front, 500)) && (await tcpProbe(l.shared, PORTS.frontAdmin, 500)),
  };
}

function sshdPlan(ctx: Ctx, spec: PartSpec): SpawnPlan {
  const h = ctx.l.hosts.find((x) => x.name === spec.hostName)!;
  return {
    cmd: ctx.tools.sshd,
    args: ['-D', '-f', h.sshdConfig, '-E', spec.log],
    cwd: h.dir,
    timeoutMs: 15_000,
    ready: async () => (await tcpBanner(h.address, PORTS.sshd, 1000))?.startsWith('SSH-') ?? false,
  };
}

function appPlan(ctx: Ctx, spec: PartSpec): SpawnPlan {
  const a = appOf(ctx.l, spec);
  return {
    cmd: ctx.tools.node,
    args: [join(ctx.l.binDir, 'app.cjs'), a.site, a.address, String(PORTS.app), a.flag],
    cwd: join(ctx.l.dir, a.host),
    timeoutMs: 15_000,
    ready: async () => (await httpStatus(`http://${a.address}:${PORTS.app}/`)) !== null,
  };
}

/** `switchyard codec-server` on the sandbox's topology (its temporal.codec: the key, the UI's origin). */
function codecPlan(ctx: Ctx): SpawnPlan {
  const { l, tools } = ctx;
  return {
    cmd: tools.node,
    args: [join(REPO, 'bin', 'switchyard.js'), '--config', l.topologyFile, 'codec-server', '--listen', `${l.shared}:${PORTS.codec}`],
    cwd: l.dir,
    asSelf: true,
    env: { ...cleanClientEnv(), NODE_NO_WARNINGS: '1', SWITCHYARD_LOG_LEVEL: 'warn' },
    timeoutMs: 30_000,
    ready: async () => (await httpStatus(`${codecEndpoint(l)}/healthz`)) === 200,
  };
}

function planFor(ctx: Ctx, spec: PartSpec): SpawnPlan {
  switch (spec.kind) {
    case 'temporal':
      return temporalPlan(ctx);
    case 'codec':
      return codecPlan(ctx);
    case 'ec2':
      return motoPlan(ctx);
    case 'front':
      return frontPlan(ctx);
    case 'sshd':
      return sshdPlan(ctx, spec);
    case 'app':
      return appPlan(ctx, spec);
    default:
      throw new Error(`no spawn plan for ${spec.kind}`);
  }
}

/** Make a directly spawned part (temporal, codec, ec2, front, sshd, app) run: resume, wait, or start it. */
async function ensureSpawned(ctx: Ctx, spec: PartSpec): Promise<void> {
  const pid = recorded(ctx.state, spec.name);
  if (pid !== null) {
    if (isPaused(pid)) {
      signalTree(pid, 'SIGCONT');
      ctx.log(`${spec.name}: resumed (pid ${pid})`);
    }
    const plan = planFor(ctx, spec);
    const deadline = Date.now() + Math.min(plan.timeoutMs, 20_000);
    while (Date.now() < deadline) {
      if (!isAlive(pid)) break;
      if (await plan.ready(pid)) return;
      await sleep(200);
    }
    if (isAlive(pid)) {
      ctx.log(`${spec.name}: pid ${pid} runs but does not answer; restarting it`);
      await terminate(pid, 5_000);
    }
  }
  if (spec.kind === 'front') {
    const r = await run(ctx.tools.haproxy, ['-c', '-q', '-f', ctx.l.frontConfig], { timeoutMs: 15_000 });
    if (r.code !== 0) throw partError(spec, `configuration check failed: ${describeRun('haproxy -c', r)}`);
  }
  await startSpawned(ctx, spec, planFor(ctx, spec));
}

/**
 * A part's processes: its process group and every descendant, wherever its group. PostgreSQL's
 * children call setsid(), so the postmaster's group alone would miss the walreceiver, the
 * checkpointer and every backend; a paused or killed "machine" must take them all.
 */
function treeOf(pid: number): number[] {
  const procs = listProcs();
  const pids = new Set(procs.filter((p) => p.pgrp === pid).map((p) => p.pid));
  pids.add(pid);
  for (const d of descendantsOf([pid], procs)) pids.add(d);
  return [...pids];
}

/** Signal a part's group and every descendant (see treeOf). */
function signalTree(pid: number, sig: NodeJS.Signals): void {
  const tree = treeOf(pid);
  signalGroup(pid, sig);
  for (const p of tree) signalPid(p, sig);
}

/**
 * SIGSTOP or SIGCONT a part's processes (group and descendants) and wait until every one of them
 * shows it (signals are delivered asynchronously: /proc says "S" for a moment after kill() returned).
 */
async function signalAndSettle(pid: number, sig: 'SIGSTOP' | 'SIGCONT'): Promise<void> {
  const tree = new Set(treeOf(pid));
  signalTree(pid, sig);
  const want = sig === 'SIGSTOP';
  for (let i = 0; i < 100; i++) {
    const procs = listProcs().filter((p) => tree.has(p.pid) && p.state !== 'Z' && p.state !== 'X');
    if (procs.every((p) => (p.state === 'T' || p.state === 't') === want)) return;
    await sleep(20);
  }
}

/** SIGTERM (after SIGCONT) to the group, SIGKILL after graceMs. */
async function terminate(pid: number, graceMs: number): Promise<void> {
  signalGroup(pid, 'SIGTERM');
  signalGroup(pid, 'SIGCONT');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) {
    signalGroup(pid, 'SIGKILL');
    for (let i = 0; i < 60 && isAlive(pid); i++) await sleep(50);
  }
}

async function svc(ctx: Ctx, app: AppLayout, verb: 'start' | 'stop', service: string): Promise<void> {
  const [cmd, ...args] = svcCommand(ctx.l, ctx.tools, app.host, verb, service);
  const r = await run(cmd, args, { runAs: ctx.runAs, cwd: join(ctx.l.dir, app.host), timeoutMs: 30_000 });
  if (r.code !== 0) {
    const spec = ctx.l.parts.find((p) => p.name === `${app.host}/${service}`)!;
    throw partError(spec, describeRun(`svc ${verb}`, r));
  }
}

/**
 * Services: on the first up, the preferred site's run and the other site's are stopped (the
 * standby site's services are stopped, as in Circonus's runbook). Afterwards up starts only those
 * that are enabled (started and not stopped since: killed, or on a host that went down); what a
 * runbook stopped stays stopped.
 */
async function ensureServices(ctx: Ctx, app: AppLayout): Promise<void> {
  for (const service of SERVICES) {
    const wanted = ctx.state.initialized ? existsSync(join(app.svcDir, `${service}.enabled`)) : app.site === 'dc1';
    const pid = servicePid(app, service);
    if (pid && isPaused(pid)) signalPid(pid, 'SIGCONT');
    if (!wanted || pid) continue;
    await svc(ctx, app, 'start', service);
    ctx.log(`${app.host}/${service}: started (pid ${servicePid(app, service)})`);
  }
}

async function ensurePostgres(ctx: Ctx): Promise<void> {
  const [dc1, dc2] = ctx.l.dbs;
  const off = ctx.l.dbs.filter((db) => poweredOff(ctx.l, db.node));
  for (const db of off) ctx.log(`${db.node}/postgres: powered off (STONITH), left stopped`);
  for (const db of ctx.l.dbs) {
    const pid = postmasterPid(db);
    if (pid && isPaused(pid)) {
      signalTree(pid, 'SIGCONT');
      ctx.log(`${db.node}/postgres: resumed (pid ${pid})`);
    }
  }
  if (!off.includes(dc1)) await ensurePrimaryNode(pgCtx(ctx), dc1, dc2);
  if (!off.includes(dc2)) await ensureStandbyNode(pgCtx(ctx), dc1, dc2);
}

async function ensureEc2(ctx: Ctx, spec: PartSpec): Promise<void> {
  await ensureSpawned(ctx, spec);
  try {
    const t0 = Date.now();
    const seed = await seedEc2(ctx.l);
    if (seed.created.length) {
      const ids = Object.entries(seed.instances)
        .map(([n, i]) => `${n}=${i.instanceId}`)
        .join(' ');
      ctx.log(`ec2: seeded ${seed.created.length} resources (${ids}, elastic IP ${seed.publicIp}; ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  } catch (err) {
    throw partError(spec, `seeding EC2 failed: ${(err as Error).message}`);
  }
  try {
    if (await seedS3(ctx.l)) ctx.log(`s3: made the backup bucket s3://${STORE_BUCKET}/${STORE_PREFIX} (versioned)`);
  } catch (err) {
    throw partError(spec, `seeding S3 failed: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Status

async function partStatus(l: Layout, state: SandboxState | null, spec: PartSpec): Promise<SandboxPart> {
  const pid = pidOf(l, state, spec);
  const enabled = spec.kind !== 'service' || existsSync(join(appOf(l, spec).svcDir, `${serviceName(spec)}.enabled`));
  const part: SandboxPart = {
    name: spec.name,
    site: spec.site,
    kind: spec.kind,
    host: spec.address,
    port: spec.port,
    pid,
    state: 'stopped',
    expected: enabled && !poweredOff(l, spec.hostName) ? 'running' : 'stopped',
  };
  // The password stays in the passfile (libpq reads it): a status, a log or a screen share shows none.
  if (spec.kind === 'postgres') part.url = `postgresql://switchyard@${spec.address}:${spec.port}/postgres?passfile=${encodeURIComponent(l.secrets.pgpass)}`;
  if (spec.kind === 'app') part.url = `http://${spec.address}:${spec.port}/`;
  if (spec.kind === 'ec2') part.url = ec2Endpoint(l);
  if (spec.kind === 'temporal') part.url = l.temporal.ui;
  if (spec.kind === 'codec') part.url = codecEndpoint(l);
  if (pid === null) {
    part.detail = poweredOff(l, spec.hostName)
      ? `powered off (STONITH): ${spec.hostName} stays off until powered on`
      : enabled
        ? 'not running'
        : 'stopped (not enabled)';
    return part;
  }
  if (isPaused(pid)) {
    part.detail = `paused (SIGSTOP), pid ${pid}`;
    return part;
  }
  if (!(await answers(spec))) {
    part.detail = `pid ${pid} runs but ${spec.address}:${spec.port} does not answer`;
    return part;
  }
  part.state = 'running';
  return part;
}

async function statusOf(l: Layout, state: SandboxState | null): Promise<SandboxStatus> {
  return {
    config: l.topologyFile,
    temporal: { address: l.temporal.address, ui: l.temporal.ui, codecEndpoint: codecEndpoint(l) },
    console: { url: `http://${l.shared}:${PORTS.console}`, operators: l.secrets.operators },
    parts: await Promise.all(l.parts.map((spec) => partStatus(l, state, spec))),
  };
}

export async function sandboxStatus(opts: SandboxOptions = {}): Promise<SandboxStatus | null> {
  const { l, state } = target(opts);
  if (!state) return null;
  return statusOf(l, state);
}

// ---------------------------------------------------------------------------------------------
// up

function newState(l: Layout, runAs: RunAs): SandboxState {
  return {
    version: 1,
    dir: l.dir,
    net: l.net,
    cluster: l.cluster,
    runAs: { user: runAs.user, uid: runAs.uid, gid: runAs.gid },
    createdAt: new Date().toISOString(),
    initialized: false,
    procs: {},
  };
}

export async function sandboxUp(opts: SandboxOptions = {}, log: (line: string) => void = noop): Promise<SandboxStatus> {
  const t0 = Date.now();
  const { l } = target(opts);
  const tools = loadTools();
  const runAs = resolveRunAs();
  return withLock(l.lockFile, async () => {
    const state = readState(l.stateFile) ?? newState(l, runAs);
    if (state.runAs.uid !== runAs.uid)
      throw new Error(
        `sandbox: ${l.dir} runs as uid ${state.runAs.uid} (${state.runAs.user}), but this user would run it as ${runAs.user}; use the same user, or down it first`,
      );
    const ctx: Ctx = { l, runAs, tools, state, log };
    const fresh = !state.initialized;
    log(`sandbox ${l.dir} (net ${l.net}, cluster ${l.cluster}, running as ${runAs.user})${fresh ? ': creating' : ''}`);
    await prepare(ctx);
    save(ctx);

    const spec = (name: string) => l.parts.find((p) => p.name === name)!;
    const tasks: [string, Promise<void>][] = [
      ['temporal', ensureSpawned(ctx, spec('temporal')).then(() => checkSearchAttributes(ctx, spec('temporal')))],
      ['codec', ensureSpawned(ctx, spec('codec'))],
      ['ec2', ensureEc2(ctx, spec('ec2'))],
      ['front', ensureSpawned(ctx, spec('front'))],
      ['postgres', ensurePostgres(ctx)],
      ...l.hosts.filter((h) => !poweredOff(l, h.name)).map((h): [string, Promise<void>] => [`${h.name}/sshd`, ensureSpawned(ctx, spec(`${h.name}/sshd`))]),
      ...l.apps.filter((a) => !poweredOff(l, a.host)).map((a): [string, Promise<void>] => [`${a.host}/app`, ensureSpawned(ctx, spec(`${a.host}/app`))]),
      ...l.apps.filter((a) => !poweredOff(l, a.host)).map((a): [string, Promise<void>] => [`${a.host}/services`, ensureServices(ctx, a)]),
    ];
    const results = await Promise.allSettled(tasks.map(([, p]) => p));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason instanceof Error ? r.reason : new Error(String(r.reason))] : []));
    if (failures.length) {
      const more =
        failures.length > 1
          ? `\n(also failed: ${failures
              .slice(1)
              .map((e) => e.message.split('\n')[0])
              .join('; ')})`
          : '';
      const err = new Error(failures[0].message + more);
      throw err;
    }

    // Everything that should run must run now (and keep running). A part that does not answer is
    // asked twice more a second apart: on a loaded machine sshd's banner can take longer than the
    // probe waits (seen: "pid runs but does not answer" right after a good start).
    const downOf = (st: SandboxStatus) => st.parts.filter((p) => p.expected === 'running' && p.state !== 'running');
    let status = await statusOf(l, state);
    for (let i = 0; i < 2 && downOf(status).length; i++) {
      await sleep(1000);
      status = await statusOf(l, state);
    }
    const down = downOf(status);
    if (down.length) {
      const first = l.parts.find((p) => p.name === down[0].name)!;
      throw partError(
        first,
        `not running after up: ${down[0].detail ?? 'stopped'}${
          down.length > 1
            ? ` (also: ${down
                .slice(1)
                .map((p) => p.name)
                .join(', ')})`
            : ''
        }`,
      );
    }
    if (!state.initialized) {
      state.initialized = true;
      save(ctx);
    }
    log(`sandbox up in ${((Date.now() - t0) / 1000).toFixed(1)} s; topology: ${l.topologyFile}`);
    return status;
  });
}

// ---------------------------------------------------------------------------------------------
// Fault injection

/** Parts named by a part name, a host ("dc1-db") or a site ("dc1"), in start order. */
function select(l: Layout, name: string): PartSpec[] {
  const exact = l.parts.filter((p) => p.name === name);
  if (exact.length) return exact;
  const group = l.parts.filter((p) => p.hostName === name || p.site === name);
  if (group.length) return group;
  throw new Error(
    `sandbox: no part, host or site named "${name}"; parts: ${l.parts.map((p) => p.name).join(', ')}; hosts: ${l.hosts.map((h) => h.name).join(', ')}; sites: dc1, dc2`,
  );
}

const STOP_ORDER: PartKind[] = ['service', 'app', 'front', 'postgres', 'temporal', 'codec', 'ec2', 'sshd'];

function openCtx(opts: SandboxOptions, log: (line: string) => void = noop): Ctx {
  const { l, state } = target(opts);
  if (!state) throw new Error(`sandbox: no sandbox at ${l.dir} (run sandbox up first)`);
  return { l, state, runAs: resolveRunAs(), tools: loadTools(), log };
}

/** Save the front's server states, so a restarted front keeps sending traffic where it was. */
async function dumpFrontState(l: Layout): Promise<void> {
  const text = await new Promise<string>((resolveText) => {
    const s = new Socket();
    let out = '';
    s.setTimeout(2000, () => s.destroy());
    s.on('data', (d: Buffer) => (out += d.toString('utf8')));
    s.on('close', () => resolveText(out));
    s.on('error', () => resolveText(''));
    s.connect(PORTS.frontAdmin, l.shared, () => s.write('show servers state\n'));
  });
  if (/^\d+\n#/.test(text)) writeFileSync(l.frontState, text);
}

async function stopOne(ctx: Ctx, spec: PartSpec, how: StopHow): Promise<void> {
  const pid = pidOf(ctx.l, ctx.state, spec);
  if (how === 'pause') {
    if (pid) await signalAndSettle(pid, 'SIGSTOP');
    return;
  }
  if (how === 'kill') {
    if (!pid) return;
    signalTree(pid, 'SIGKILL');
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(20);
    return;
  }
  switch (spec.kind) {
    case 'postgres': {
      const db = dbOf(ctx.l, spec);
      if (pid && isPaused(pid)) signalTree(pid, 'SIGCONT');
      if (!(await stopNode(pgCtx(ctx), db)) && pid) await terminate(pid, 0);
      return;
    }
    case 'service':
      await svc(ctx, appOf(ctx.l, spec), 'stop', serviceName(spec));
      return;
    case 'front':
      if (pid && !isPaused(pid)) await dumpFrontState(ctx.l);
      break;
    default:
      break;
  }
  if (pid) await terminate(pid, spec.kind === 'temporal' ? 20_000 : 5_000);
}

/**
 * Fault injection: stop = clean stop (pg_ctl stop -m fast, svc stop, SIGTERM), kill = SIGKILL to
 * the part's process group, pause = SIGSTOP to it. `name` is a part, a host or a site.
 */
export async function stopPart(opts: SandboxOptions, name: string, how: StopHow = 'stop'): Promise<void> {
  if (!['stop', 'kill', 'pause'].includes(how)) throw new Error(`sandbox: stopPart how must be stop, kill or pause, got ${JSON.stringify(how)}`);
  const ctx = openCtx(opts);
  const specs = select(ctx.l, name).sort((a, b) => STOP_ORDER.indexOf(a.kind) - STOP_ORDER.indexOf(b.kind));
  await withLock(ctx.l.lockFile, async () => {
    for (const spec of specs) await stopOne(ctx, spec, how);
  });
}

/** Undo stopPart: resume a paused part (SIGCONT), start a stopped one. */
export async function startPart(opts: SandboxOptions, name: string): Promise<void> {
  const ctx = openCtx(opts);
  const specs = select(ctx.l, name).sort((a, b) => STOP_ORDER.indexOf(b.kind) - STOP_ORDER.indexOf(a.kind));
  await withLock(ctx.l.lockFile, async () => {
    for (const spec of specs) {
      if (poweredOff(ctx.l, spec.hostName)) throw new Error(`sandbox: ${spec.hostName} is powered off (its STONITH command ran): powerOn it first`);
      const pid = pidOf(ctx.l, ctx.state, spec);
      if (pid && isPaused(pid)) {
        await signalAndSettle(pid, 'SIGCONT');
        continue;
      }
      if (pid && (await answers(spec))) continue;
      switch (spec.kind) {
        case 'postgres': {
          const [dc1, dc2] = ctx.l.dbs;
          if (spec.hostName === dc1.node) await ensurePrimaryNode(pgCtx(ctx), dc1, dc2);
          else await ensureStandbyNode(pgCtx(ctx), dc1, dc2);
          break;
        }
        case 'service':
          await svc(ctx, appOf(ctx.l, spec), 'start', serviceName(spec));
          break;
        case 'ec2':
          await ensureEc2(ctx, spec);
          break;
        default:
          await ensureSpawned(ctx, spec);
      }
    }
  });
}

/** Power a host back on after its STONITH command: its parts start again with the next `up` or startPart. */
export function powerOn(opts: SandboxOptions, hostName: string): void {
  const { l } = target(opts);
  const h = l.hosts.find((x) => x.name === hostName);
  if (!h) throw new Error(`sandbox: no host named "${hostName}"; hosts: ${l.hosts.map((x) => x.name).join(', ')}`);
  rmSync(join(h.dir, POWERED_OFF_FLAG), { force: true });
}

// ---------------------------------------------------------------------------------------------
// down

function knownPids(l: Layout, state: SandboxState | null): number[] {
  return l.parts.map((spec) => pidOf(l, state, spec)).filter((p): p is number => p !== null);
}

function sweepSpec(l: Layout, state: SandboxState | null): SweepSpec {
  let socketUid = state?.runAs.uid;
  if (socketUid === undefined) {
    try {
      socketUid = resolveRunAs().uid;
    } catch {
      socketUid = -1;
    }
  }
  return { dir: l.dir, ownsSocket: ownsSocket(l), socketUid, known: knownPids(l, state) };
}

/** SIGKILL every process of the sandbox until none is left (or attempts run out); returns leftovers. */
function killAllSync(l: Layout, state: SandboxState | null, attempts = 5): string[] {
  let left: string[] = [];
  for (let i = 0; i < attempts; i++) {
    const procs = findSandboxProcesses(sweepSpec(l, state));
    if (procs.length === 0) return [];
    for (const p of procs) signalPid(p.pid, 'SIGKILL');
    for (let w = 0; w < 40; w++) {
      if (!procs.some((p) => isAlive(p.pid, p.startTime))) break;
      sleepSync(25);
    }
    left = procs.filter((p) => isAlive(p.pid, p.startTime)).map((p) => `pid ${p.pid} (${p.argv.join(' ').slice(0, 120)})`);
  }
  return left;
}

/**
 * Cut a site off from the worker alone (sandbox/partition.ts): this process's packets to the
 * site's hosts are dropped; the other site's hosts still reach it. Returns the addresses cut.
 */
export function partitionFromWorker(opts: SandboxOptions, site: string): string[] {
  return cutFromWorker(target(opts).l, site);
}

/** End partitionFromWorker's partition. */
export function healPartition(opts: SandboxOptions): void {
  healSync(target(opts, true).l);
}

export async function sandboxDown(opts: SandboxOptions = {}, log: (line: string) => void = noop): Promise<void> {
  const t0 = Date.now();
  const { l } = target(opts, true);
  healSync(l);
  await withLock(l.lockFile, async () => {
    const { state } = target(opts, true);
    if (!state && !existsSync(l.dir)) {
      const left = killAllSync(l, null);
      if (left.length) throw new Error(`sandbox: processes of ${l.dir} survived SIGKILL: ${left.join('; ')}`);
      log(`no sandbox at ${l.dir}`);
      return;
    }
    // Clean stops first: PostgreSQL through pg_ctl (fast, then immediate), the rest SIGTERM.
    let tools: Tools | null = null;
    try {
      tools = loadTools();
    } catch {
      /* without pg_ctl, everything gets signals */
    }
    const pids = knownPids(l, state);
    for (const pid of pids) signalGroup(pid, 'SIGCONT');
    const pgStops = tools
      ? l.dbs.map(async (db) => {
          if (!postmasterPid(db)) return;
          const ctx: PgContext = { l, runAs: resolveRunAs(), tools: { binDir: tools!.pgBinDir }, log, mayCreate: false };
          const ok = await stopNode(ctx, db, 10).catch(() => false);
          log(`${db.node}/postgres: ${ok ? 'stopped' : 'did not stop cleanly'}`);
        })
      : [];
    const others = l.parts
      .filter((spec) => spec.kind !== 'postgres' || !tools)
      .map(async (spec) => {
        const pid = pidOf(l, state, spec);
        if (!pid) return;
        await terminate(pid, 1_000); // the directory goes next: no state worth a slow shutdown
        log(`${spec.name}: stopped (pid ${pid})`);
      });
    await Promise.all([...pgStops, ...others]);
    // Then everything else that belongs to the sandbox: sessions and services started over ssh,
    // PostgreSQL backends, anything whose command line names the directory.
    const left = killAllSync(l, state);
    if (left.length) throw new Error(`sandbox: processes of ${l.dir} survived SIGKILL: ${left.join('; ')}`);
    rmSync(l.dir, { recursive: true, force: true });
    log(`sandbox ${l.dir} down and removed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
}

/**
 * Synchronous last resort for process 'exit' handlers (test fixtures): SIGKILL everything of the
 * sandbox and remove its directory. Prefer sandboxDown.
 */
export function sandboxKillSync(opts: SandboxOptions = {}): void {
  const { l, state } = target(opts, true);
  healSync(l);
  killAllSync(l, state);
  rmSync(l.dir, { recursive: true, force: true });
  rmSync(l.lockFile, { force: true });
}
export { partitionUnsupported } from './partition';
