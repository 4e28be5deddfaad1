/**
 * Processes and files of the peer clusters (repmgr, pg_auto_failover, Patroni): one temp dir under
 * os.tmpdir() named switchyard-peers-*, everything in it owned by the sandbox's run-as user
 * (PostgreSQL refuses root; as root that is the OS user "postgres", as in sandbox/procs.ts), free
 * ports on 127.0.0.1 picked at runtime, and a cleanup that stops every process the bench started:
 * the ones it spawned (their process groups), and whatever still names the temp dir on its
 * command line (postmasters started by pg_ctl, pg_autoctl's children) or descends from those.
 */
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { sshdConfig } from '../../sandbox/sshd-config';
import {
  baseEnv,
  describeRun,
  descendantsOf,
  isAlive,
  listProcs,
  resolveRunAs,
  run,
  selfAndAncestors,
  signalGroup,
  signalPid,
  sleep,
  spawnDetached,
  tcpBanner,
  type RunAs,
  type RunResult,
} from '../../sandbox/procs';

export { sleep };

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** One PostgreSQL node of a peer cluster, as the writer and the checks reach it. */
export interface PeerNode {
  name: string;
  host: string;
  port: number;
  /** Connection settings of a superuser (the checks) and of the writer. */
  conn: pg.ClientConfig;
  dataDir: string;
}

export class PeerHost {
  readonly root: string;
  readonly runAs: RunAs;
  private readonly spawned: { name: string; pid: number }[] = [];

  constructor(root?: string) {
    this.runAs = resolveRunAs();
    this.root = root ?? mkdtempSync(join(tmpdir(), 'switchyard-peers-'));
    this.own(this.root);
  }

  own(path: string): void {
    if (this.runAs.switching) chownSync(path, this.runAs.uid, this.runAs.gid);
  }

  /** A directory under the root, owned by the run-as user (0700: PostgreSQL wants it for data dirs). */
  dir(...parts: string[]): string {
    let p = this.root;
    for (const part of parts) {
      p = join(p, part);
      mkdirSync(p, { recursive: true, mode: 0o700 });
      this.own(p);
    }
    return p;
  }

  write(path: string, content: string, mode = 0o644): string {
    writeFileSync(path, content, { mode });
    this.own(path);
    return path;
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    // pg_autoctl keeps its state under XDG_*; patronictl its config cache under HOME: all in the temp dir.
    return baseEnv(this.runAs, {
      HOME: this.root,
      XDG_CONFIG_HOME: join(this.root, 'xdg', 'config'),
      XDG_DATA_HOME: join(this.root, 'xdg', 'data'),
      XDG_RUNTIME_DIR: join(this.root, 'xdg', 'run'),
      PATH: `${PG_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
      ...extra,
    });
  }

  /** Run to completion as the run-as user. */
  run(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
    return run(cmd, args, { runAs: this.runAs, env: this.env(opts.env), cwd: opts.cwd ?? this.root, timeoutMs: opts.timeoutMs ?? 120_000 });
  }

  /** Run, and throw with the command's last output lines when it fails. */
  async must(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
    const r = await this.run(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${describeRun(`${cmd} ${args.join(' ')}`, r)}`);
    return r;
  }

  /** A long-running process in its own process group, output to <root>/logs/<name>.log; stopped by stopAll. */
  async spawn(name: string, cmd: string, args: readonly string[], env: Record<string, string> = {}): Promise<number> {
    const log = join(this.dir('logs'), `${name.replace(/\//g, '-')}.log`);
    const pid = await spawnDetached(cmd, args, { runAs: this.runAs, log, cwd: this.root, env: this.env(env) });
    this.spawned.push({ name, pid });
    return pid;
  }

  logFile(name: string): string {
    return join(this.root, 'logs', `${name.replace(/\//g, '-')}.log`);
  }

  /** Stop one spawned process (SIGTERM to its group, then SIGKILL after `graceMs`). */
  async stopSpawned(name: string, graceMs = 5000): Promise<void> {
    const entries = this.spawned.filter((s) => s.name === name);
    for (const s of entries) signalGroup(s.pid, 'SIGTERM');
    for (const end = Date.now() + graceMs; entries.some((s) => isAlive(s.pid)) && Date.now() < end;) await sleep(50);
    for (const s of entries) if (isAlive(s.pid)) signalGroup(s.pid, 'SIGKILL');
    for (const s of entries) this.spawned.splice(this.spawned.indexOf(s), 1);
  }

  /** Processes of this bench: spawned ones, those naming the root on their command line, and their descendants. */
  ours(): number[] {
    const procs = listProcs();
    const keep = selfAndAncestors();
    const roots = new Set<number>([
      ...this.spawned.map((s) => s.pid).filter((p) => isAlive(p)),
      ...procs.filter((p) => p.argv.some((a) => a.includes(this.root))).map((p) => p.pid),
    ]);
    return [...new Set([...roots, ...descendantsOf(roots, procs)])].filter((p) => !keep.has(p) && isAlive(p));
  }

  /** Every process of the bench's peer clusters: SIGTERM, a short grace, then SIGKILL until none is left. */
  async stopAll(graceMs = 3000): Promise<string[]> {
    for (const s of this.spawned) signalGroup(s.pid, 'SIGTERM');
    for (const p of this.ours()) signalPid(p, 'SIGTERM');
    for (const end = Date.now() + graceMs; this.ours().length && Date.now() < end;) await sleep(100);
    for (let i = 0; i < 10; i++) {
      const left = this.ours();
      if (!left.length) break;
      for (const p of left) signalPid(p, 'SIGKILL');
      await sleep(100);
    }
    this.spawned.length = 0;
    return this.ours().map(String);
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * `n` distinct ports free on every address (bound on 0.0.0.0 at once, then let go): the
 * monitor of pg_auto_failover listens on '*' while it is created.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen({ host: '0.0.0.0', port: 0, exclusive: true }, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** One query on a node (connect timeout 1 s); null when the node cannot be reached. */
export async function query<R extends pg.QueryResultRow>(cfg: pg.ClientConfig, sql: string, params: unknown[] = []): Promise<R[] | null> {
  const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 1000, query_timeout: 5000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.query<R>(sql, params)).rows;
  } catch {
    return null;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The node that takes writes (not in recovery), when exactly one does. */
export async function primaryOf(nodes: PeerNode[]): Promise<PeerNode | null> {
  const states = await Promise.all(nodes.map((n) => query<{ r: boolean }>(n.conn, 'SELECT pg_is_in_recovery() AS r')));
  const primaries = nodes.filter((_, i) => states[i]?.[0]?.r === false);
  return primaries.length === 1 ? primaries[0] : null;
}

/** Whether `standby` streams from `primary`: a walsender in state streaming on the primary for the standby's WAL receiver. */
export async function streamsFrom(primary: PeerNode, standby: PeerNode): Promise<boolean> {
  const [senders, receiver] = await Promise.all([
    query<{ n: string }>(primary.conn, `SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming'`),
    query<{ status: string; port: number | null; host: string | null }>(
      standby.conn,
      `SELECT status, sender_port AS port, sender_host AS host FROM pg_stat_wal_receiver`,
    ),
  ]);
  const r = receiver?.[0];
  return Number(senders?.[0]?.n ?? 0) > 0 && r?.status === 'streaming' && (r.port === null || Number(r.port) === primary.port);
}

/** Until the pair is healthy again: one primary, the other node streaming from it. */
export async function waitHealthy(nodes: PeerNode[], timeoutMs: number): Promise<{ primary: PeerNode; standby: PeerNode } | null> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(200)) {
    const p = await primaryOf(nodes);
    const s = p && nodes.find((n) => n !== p);
    if (p && s && (await streamsFrom(p, s))) return { primary: p, standby: s };
  }
  return null;
}

/** The postmaster's pid from postmaster.pid (first line). */
export function postmasterPidOf(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** SIGKILL the postmaster of a data dir (only the postmaster: its backends notice and exit, as in a crash). */
export async function killPostmaster(dataDir: string): Promise<number> {
  const pid = postmasterPidOf(dataDir);
  if (!pid) throw new Error(`no running postmaster for ${dataDir}`);
  signalPid(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(10);
  return pid;
}

/**
 * The sandbox's PostgreSQL settings (sandbox/postgres.ts postgresqlConf), minus what names a
 * node (paths, address, port, socket, cluster name): the same tuning for every peer node.
 */
export function tuningFrom(conf: string): Record<string, string> {
  const perNode = new Set([
    'data_directory',
    'hba_file',
    'ident_file',
    'external_pid_file',
    'listen_addresses',
    'port',
    'unix_socket_directories',
    'unix_socket_permissions',
    'cluster_name',
    'log_line_prefix',
  ]);
  const out: Record<string, string> = {};
  for (const line of conf.split('\n')) {
    const m = /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || perNode.has(m[1])) continue;
    out[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** A settings map as postgresql.conf lines (strings quoted). */
export function confLines(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${/^-?\d+$|^(on|off|true|false)$/.test(v) ? v : `'${v.replace(/'/g, "''")}'`}`)
    .join('\n');
}

/** The table the writer inserts into, created as the sandbox does (sandbox/postgres.ts seedPrimary), with its three rows. */
export const SEED_SQL = [
  `CREATE TABLE IF NOT EXISTS public.sandbox_rows (id bigserial PRIMARY KEY, note text, at timestamptz DEFAULT now())`,
  `INSERT INTO public.sandbox_rows (note) SELECT v FROM (VALUES ('seeded by sandbox up: one'), ('seeded by sandbox up: two'), ('seeded by sandbox up: three')) t(v) WHERE NOT EXISTS (SELECT 1 FROM public.sandbox_rows)`,
];

export async function seed(cfg: pg.ClientConfig): Promise<void> {
  const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    for (const s of SEED_SQL) await c.query(s);
  } finally {
    await c.end();
  }
}

/** An sshd of one peer "host" on 127.0.0.1:port, its own ed25519 host key, key auth only, as the run-as user. */
export async function startSshd(h: PeerHost, name: string, port: number, authorizedKeys: string): Promise<{ hostKeyPub: string; port: number }> {
  const d = h.dir(name, 'sshd');
  const hostKey = join(d, 'host_ed25519');
  await h.must('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', hostKey]);
  const ak = h.write(join(d, 'authorized_keys'), authorizedKeys, 0o600);
  const cfg = h.write(
    join(d, 'sshd_config'),
    sshdConfig({
      comment: `bench/peers: sshd of peer host ${name}, running as ${h.runAs.user} (as the sandbox's hosts do)`,
      listen: `127.0.0.1:${port}`,
      hostKey,
      pidFile: join(d, 'sshd.pid'),
      authorizedKeys: ak,
      user: h.runAs.user,
    }),
  );
  await h.spawn(`${name}/sshd`, '/usr/sbin/sshd', ['-D', '-e', '-f', cfg]);
  for (let i = 0; ; i++) {
    if ((await tcpBanner('127.0.0.1', port, 1000))?.startsWith('SSH-')) break;
    if (i > 50) throw new Error(`${name}/sshd does not answer on 127.0.0.1:${port}`);
    await sleep(100);
  }
  const pub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return { hostKeyPub: pub, port };
}
