/**
 * Where everything of a sandbox lives: addresses, ports and paths. Pure; no side effects.
 *
 *   127.{net}.0.1   shared: temporal UI :8233, codec server :8888, front :15432 (admin :19999), ec2 :15000, sshd :2222
 *   temporal        127.0.0.1:7233 on net 0, else 127.0.0.1:{17000 + net} (see temporalEndpoints)
 *   127.{net}.1.1   dc1-db   postgres :5432, sshd :2222
 *   127.{net}.1.2   dc1-app  app :8080, sshd :2222, services
 *   127.{net}.2.1   dc2-db
 *   127.{net}.2.2   dc2-app
 *
 *   <dir>/state.json            what `up` started (pids), net, cluster, run-as user
 *   <dir>/switchyard.yaml       the generated topology
 *   <dir>/secrets/              passwords, pgpass, SSH client key, fake AWS credentials, codec key (0600)
 *   <dir>/logs/<part>.log       one log per part
 *   <dir>/bin/                  app.cjs, svc.cjs, service.cjs (copied, so any user can run them)
 *   <dir>/ssh/authorized_keys
 *   <dir>/<host>/               per host (and shared/): sshd_config, host key; db hosts: conf/ (postgresql.conf,
 *                               pg_hba.conf), pgdata/, run/ (unix socket); app hosts: maintenance
 *                               flag, svc/ (service pid files)
 *   <dir>/temporal.db  <dir>/front/  <dir>/ec2/  <dir>/backups/
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const SITES = ['dc1', 'dc2'] as const;
export type Site = (typeof SITES)[number];
export const SERVICES = ['fault-detection', 'notification'] as const;

export const PORTS = {
  temporal: 7233,
  temporalUi: 8233,
  postgres: 5432,
  sshd: 2222,
  app: 8080,
  front: 15432,
  frontAdmin: 19999,
  ec2: 15000,
  console: 8180,
  codec: 8888,
} as const;

/**
 * Where Temporal listens. Not 127.{net}.0.1:7233 off net 0: `temporal server start-dev --ip X`
 * (CLI 1.9.1) binds its internal history/matching/worker services on X but tells the frontend
 * they are on 127.0.0.1, so with any X other than 127.0.0.1 (or 0.0.0.0, which we may not use)
 * every workflow call fails with "context deadline exceeded" while cluster health says SERVING.
 * So the frontend always binds 127.0.0.1, on 7233 for net 0 (the CLI's default address) and on
 * 17000 + net otherwise; only the Web UI (which just dials the frontend) sits on 127.{net}.0.1.
 */
export function temporalEndpoints(net: number): { host: string; port: number; address: string; uiHost: string; uiPort: number; ui: string } {
  const port = net === 0 ? PORTS.temporal : 17000 + net;
  const uiHost = `127.${net}.0.1`;
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}`, uiHost, uiPort: PORTS.temporalUi, ui: `http://${uiHost}:${PORTS.temporalUi}` };
}

export const EC2_REGION = 'us-east-1';
/** The Elastic IP (TEST-NET-2, data only: nothing is ever sent there). */
export const ELASTIC_IP = '198.51.100.10';
export const SEARCH_ATTRIBUTES = ['SwitchyardCluster', 'SwitchyardOperation', 'SwitchyardStep', 'SwitchyardWaitingFor', 'SwitchyardVerdict'] as const;

/** The host on the shared address (no site): where the front's server-state file is written over SSH. */
export const SHARED_HOST = 'shared';

/** The id of the sandbox's payload codec key (in every payload it encrypted). */
export const CODEC_KEY_ID = 'sandbox-1';

/** The codec server's URL: the UI's and the CLI's --codec-endpoint. */
export function codecEndpoint(l: { shared: string }): string {
  return `http://${l.shared}:${PORTS.codec}`;
}

export type PartKind = 'temporal' | 'codec' | 'postgres' | 'sshd' | 'app' | 'service' | 'front' | 'ec2';

export interface HostLayout {
  name: string; // dc1-db, or "shared" (the shared address: the front's host, no site)
  site: Site | null;
  role: 'db' | 'app' | 'shared';
  address: string;
  dir: string;
  sshdConfig: string;
  hostKey: string;
}

export interface DbLayout {
  node: string; // dc1-db
  site: Site;
  address: string;
  /** Replication slot this node streams from while it is a standby (on the other node). */
  slot: string;
  dataDir: string;
  configDir: string;
  socketDir: string;
  log: string;
}

export interface AppLayout {
  host: string; // dc1-app
  site: Site;
  address: string;
  flag: string;
  svcDir: string;
  log: string;
}

export interface PartSpec {
  name: string;
  site: Site | null;
  kind: PartKind;
  /** Key of the host (dc1-db …) or "shared". */
  hostName: string;
  address: string;
  port: number;
  log: string;
}

export interface Layout {
  dir: string;
  net: number;
  cluster: string;
  shared: string;
  temporal: ReturnType<typeof temporalEndpoints>;
  stateFile: string;
  lockFile: string;
  topologyFile: string;
  secretsDir: string;
  logsDir: string;
  binDir: string;
  sshDir: string;
  authorizedKeys: string;
  backupsDir: string;
  temporalDb: string;
  frontDir: string;
  frontConfig: string;
  frontState: string;
  ec2Dir: string;
  secrets: {
    sshKey: string;
    pgPassword: string;
    replPassword: string;
    pgpass: string;
    awsAccessKeyId: string;
    awsSecretAccessKey: string;
    /** The console's operators: { name: { password, hash } } (the passwords a demo or a test signs in with). */
    operators: string;
    /** The console's Ed25519 signing key (PEM). */
    consoleKey: string;
    /** The payload codec's AES-256 key (64 hex digits): the sandbox encrypts every payload. */
    codecKey: string;
  };
  hosts: HostLayout[];
  dbs: DbLayout[];
  apps: AppLayout[];
  parts: PartSpec[];
}

export function checkNet(net: number): number {
  if (!Number.isInteger(net) || net < 0 || net > 255) throw new Error(`sandbox: net must be an integer from 0 to 255, got ${net}`);
  return net;
}

export function defaultDir(net: number, env: NodeJS.ProcessEnv = process.env): string {
  if (env.SWITCHYARD_SANDBOX_DIR) return resolve(env.SWITCHYARD_SANDBOX_DIR);
  return join(tmpdir(), net === 0 ? 'switchyard-sandbox' : `switchyard-sandbox-net${net}`);
}

export function siteOctet(site: Site): number {
  return site === 'dc1' ? 1 : 2;
}

export function makeLayout(dir: string, net: number, cluster: string): Layout {
  dir = resolve(dir).replace(/\/+$/, '') || '/';
  checkNet(net);
  const shared = `127.${net}.0.1`;
  const temporal = temporalEndpoints(net);
  const logsDir = join(dir, 'logs');
  const secretsDir = join(dir, 'secrets');
  const hosts: HostLayout[] = [];
  const dbs: DbLayout[] = [];
  const apps: AppLayout[] = [];
  const parts: PartSpec[] = [
    { name: 'temporal', site: null, kind: 'temporal', hostName: 'shared', address: temporal.host, port: temporal.port, log: join(logsDir, 'temporal.log') },
    // The payload codec's server (switchyard codec-server): the Temporal UI decrypts through it.
    { name: 'codec', site: null, kind: 'codec', hostName: 'shared', address: shared, port: PORTS.codec, log: join(logsDir, 'codec.log') },
    { name: 'ec2', site: null, kind: 'ec2', hostName: 'shared', address: shared, port: PORTS.ec2, log: join(logsDir, 'ec2.log') },
    { name: 'front', site: null, kind: 'front', hostName: 'shared', address: shared, port: PORTS.front, log: join(logsDir, 'front.log') },
    // The shared address as a host: the front's HAProxy state file is written through it.
    {
      name: `${SHARED_HOST}/sshd`,
      site: null,
      kind: 'sshd',
      hostName: SHARED_HOST,
      address: shared,
      port: PORTS.sshd,
      log: join(logsDir, `${SHARED_HOST}.sshd.log`),
    },
  ];
  const sharedDir = join(dir, SHARED_HOST);
  hosts.push({
    name: SHARED_HOST,
    site: null,
    role: 'shared',
    address: shared,
    dir: sharedDir,
    sshdConfig: join(sharedDir, 'sshd_config'),
    hostKey: join(sharedDir, 'ssh_host_ed25519_key'),
  });
  for (const site of SITES) {
    const o = siteOctet(site);
    for (const role of ['db', 'app'] as const) {
      const name = `${site}-${role}`;
      const address = `127.${net}.${o}.${role === 'db' ? 1 : 2}`;
      const hdir = join(dir, name);
      hosts.push({ name, site, role, address, dir: hdir, sshdConfig: join(hdir, 'sshd_config'), hostKey: join(hdir, 'ssh_host_ed25519_key') });
      if (role === 'db') {
        const db: DbLayout = {
          node: name,
          site,
          address,
          slot: name.replace(/-/g, '_'),
          dataDir: join(hdir, 'pgdata'),
          configDir: join(hdir, 'conf'),
          socketDir: join(hdir, 'run'),
          log: join(logsDir, `${name}.postgres.log`),
        };
        dbs.push(db);
        parts.push({ name: `${name}/postgres`, site, kind: 'postgres', hostName: name, address, port: PORTS.postgres, log: db.log });
        parts.push({ name: `${name}/sshd`, site, kind: 'sshd', hostName: name, address, port: PORTS.sshd, log: join(logsDir, `${name}.sshd.log`) });
      } else {
        const app: AppLayout = { host: name, site, address, flag: join(hdir, 'maintenance'), svcDir: join(hdir, 'svc'), log: join(logsDir, `${name}.app.log`) };
        apps.push(app);
        parts.push({ name: `${name}/sshd`, site, kind: 'sshd', hostName: name, address, port: PORTS.sshd, log: join(logsDir, `${name}.sshd.log`) });
        parts.push({ name: `${name}/app`, site, kind: 'app', hostName: name, address, port: PORTS.app, log: app.log });
        for (const svc of SERVICES)
          parts.push({ name: `${name}/${svc}`, site, kind: 'service', hostName: name, address, port: 0, log: join(logsDir, `${name}.${svc}.log`) });
      }
    }
  }
  return {
    dir,
    net,
    cluster,
    shared,
    temporal,
    stateFile: join(dir, 'state.json'),
    lockFile: `${dir}.lock`,
    topologyFile: join(dir, 'switchyard.yaml'),
    secretsDir,
    logsDir,
    binDir: join(dir, 'bin'),
    sshDir: join(dir, 'ssh'),
    authorizedKeys: join(dir, 'ssh', 'authorized_keys'),
    backupsDir: join(dir, 'backups'),
    temporalDb: join(dir, 'temporal.db'),
    frontDir: join(dir, 'front'),
    frontConfig: join(dir, 'front', 'haproxy.cfg'),
    frontState: join(dir, 'front', 'servers.state'),
    ec2Dir: join(dir, 'ec2'),
    secrets: {
      sshKey: join(secretsDir, 'id_ed25519'),
      pgPassword: join(secretsDir, 'pg-switchyard.password'),
      replPassword: join(secretsDir, 'pg-replicator.password'),
      pgpass: join(secretsDir, 'pgpass'),
      awsAccessKeyId: join(secretsDir, 'aws-access-key-id'),
      awsSecretAccessKey: join(secretsDir, 'aws-secret-access-key'),
      operators: join(secretsDir, 'operators.json'),
      consoleKey: join(secretsDir, 'console.key'),
      codecKey: join(secretsDir, 'codec.key'),
    },
    hosts,
    dbs,
    apps,
    parts,
  };
}

/** Sockets that only this sandbox's processes hold: its hosts' ports (and, off net 0, anything on the shared address). */
export function ownsSocket(l: Layout): (address: string, port: number) => boolean {
  const hostAddrs = new Set(l.hosts.filter((h) => h.role !== 'shared').map((h) => h.address));
  const hostPorts = new Set<number>([PORTS.postgres, PORTS.sshd, PORTS.app]);
  // On net 0 the shared address is 127.0.0.1, where anything else may listen too: of it, only
  // the shared host's sshd port is ours.
  return (address, port) => (hostAddrs.has(address) && hostPorts.has(port)) || (address === l.shared && (l.net !== 0 || port === PORTS.sshd));
}
