/**
 * The topology the sandbox generates for itself, in exactly the format of src/topology/schema.ts,
 * validated with parseTopology before it is written. Secrets are { file: … } references.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Document, isScalar, visit } from 'yaml';
import { parseTopology } from '../src/topology/load';
import type { TopologyInput } from '../src/topology/schema';
import { CODEC_KEY_ID, EC2_REGION, ELASTIC_IP, PORTS, SERVICES, SHARED_HOST, SITES, type Layout } from './layout';
import { ec2Endpoint, PRIVATE_VIP } from './ec2';
import { STORE_BUCKET, STORE_PREFIX } from './s3';
import type { RunAs } from './procs';

export interface TopologyTools {
  pgBinDir: string;
  node: string;
}

function hostKeyOf(pubFile: string): string {
  const [type, key] = readFileSync(pubFile, 'utf8').trim().split(/\s+/);
  return `${type} ${key}`;
}

/**
 * The host that runs the "dns" command driver. A command driver has exactly one host, so it sits
 * at the site a failover goes to from the normal layout (dc2, when dc1 is lost). Failing over back
 * to dc1 while dc2 is down finds it unreachable (the move fails; reads say "cannot read").
 */
export const DNS_HOST = 'dc2-app';
/** The sandbox's backup server: base backups and drills run on dc2's app host (the standby site). */
export const BACKUP_HOST = 'dc2-app';

/** The "dns" driver's record: one line "<site> <address>:<port>" (sandbox/bin/dns.cjs). */
export function dnsRecordFile(l: Layout): string {
  return join(l.dir, 'dns', `db.${l.cluster}`);
}

/**
 * A small config file on each database host, naming its host: the node's configFiles copy the
 * other database host's file over it when the node rejoins (the primary's host is the other one).
 */
export function appConfFile(l: Layout, dbHost: string): string {
  return join(l.dir, dbHost, 'etc', 'app.conf');
}

/** The host of the sandbox's file set "ca" (backup.files.ca): a CA's key pair, the key 0600, backed up encrypted. */
export const FILES_HOST = 'dc1-app';

export function caDir(l: Layout): string {
  return join(l.dir, FILES_HOST, 'ca');
}

/** The key the "ca" file set is encrypted with (32 random bytes, base64). */
export function caSetKeyFile(l: Layout): string {
  return join(l.secretsDir, 'files-ca.key');
}

/** Where an app host's afterPromote hook "repoint-app" records the database the app should use. */
export function dbTargetFile(l: Layout, appHost: string): string {
  return join(l.dir, appHost, 'db-target');
}

export function dnsCommand(l: Layout, tools: TopologyTools, verb: 'set' | 'get', ...args: string[]): string[] {
  return [tools.node, join(l.binDir, 'dns.cjs'), verb, dnsRecordFile(l), ...args];
}

export function svcCommand(l: Layout, tools: TopologyTools, host: string, verb: 'start' | 'stop' | 'status', service: string): string[] {
  const args = [tools.node, join(l.binDir, 'svc.cjs'), verb, service, join(l.dir, host, 'svc')];
  return verb === 'start' ? [...args, join(l.logsDir, `${host}.${service}.log`)] : args;
}

/** Who signs in to the sandbox's console: operators' password hashes, and the console's public key. */
export interface SandboxAccess {
  operators: Record<string, { hash: string; groups: string[]; publicKey: string }>;
  consolePublicKey: string;
}

export function buildTopology(l: Layout, runAs: RunAs, tools: TopologyTools, access?: SandboxAccess): TopologyInput {
  const sites: NonNullable<TopologyInput['clusters'][string]>['sites'] = {};
  for (const site of SITES) {
    const app = l.apps.find((a) => a.site === site)!;
    const db = l.dbs.find((d) => d.site === site)!;
    sites[site] = {
      app: { url: `http://${app.address}:${PORTS.app}/` },
      maintenance: { host: app.host, on: ['touch', app.flag], off: ['rm', '-f', app.flag], status: ['test', '-e', app.flag] },
      services: Object.fromEntries(
        SERVICES.map((svc) => [
          svc,
          {
            host: app.host,
            start: svcCommand(l, tools, app.host, 'start', svc),
            stop: svcCommand(l, tools, app.host, 'stop', svc),
            status: svcCommand(l, tools, app.host, 'status', svc),
          },
        ]),
      ),
      // The watch asks this site's app host whether the other site's database answers (pg_isready).
      vantage: { host: app.host, binDir: tools.pgBinDir },
      // Run on this site's app host once this site's database is the new primary.
      hooks: {
        afterPromote: [
          {
            name: 'repoint-app',
            host: app.host,
            command: [tools.node, join(l.binDir, 'repoint-app.cjs'), dbTargetFile(l, app.host), db.address, String(PORTS.postgres)],
            // Already done when the app already names this database: a retried hook is not run again.
            check: [tools.node, join(l.binDir, 'repoint-app.cjs'), '--check', dbTargetFile(l, app.host), db.address, String(PORTS.postgres)],
            timeoutSeconds: 30,
          },
        ],
      },
    };
  }
  const hosts = Object.fromEntries(
    l.hosts.map((h) => [h.name, { ...(h.site ? { site: h.site } : {}), address: h.address, port: PORTS.sshd, hostKey: hostKeyOf(`${h.hostKey}.pub`) }]),
  );
  const nodes = Object.fromEntries(
    l.dbs.map((db) => [
      db.node,
      {
        site: db.site,
        sshHost: db.node,
        host: db.address,
        port: PORTS.postgres,
        dataDir: db.dataDir,
        configDir: db.configDir,
        binDir: tools.pgBinDir,
        slot: db.slot,
        // All "hosts" share one file system here, so the path differs per host: from the other
        // database host's file (the primary's, when this node rejoins) to this host's.
        configFiles: l.dbs.filter((o) => o.node !== db.node).map((o) => ({ from: appConfFile(l, o.node), to: appConfFile(l, db.node) })),
        ec2: { tags: { 'switchyard:node': db.node } },
      },
    ]),
  );
  return {
    version: 1,
    ...(access
      ? {
          operators: Object.fromEntries(Object.entries(access.operators).map(([n, o]) => [n, { password: o.hash, groups: o.groups, publicKey: o.publicKey }])),
          console: { listen: `${l.shared}:${PORTS.console}`, signingKey: { file: l.secrets.consoleKey }, publicKey: access.consolePublicKey },
        }
      : {}),
    // Encryption on, as it should be in production: payloads in Temporal's store are ciphertext,
    // and the UI (and `temporal --codec-endpoint`) reads them through the sandbox's codec server.
    temporal: {
      codec: {
        keys: [{ id: CODEC_KEY_ID, key: { file: l.secrets.codecKey } }],
        server: { listen: `${l.shared}:${PORTS.codec}`, uiOrigins: [l.temporal.ui] },
      },
    },
    clusters: {
      [l.cluster]: {
        preferredPrimary: 'dc1',
        sites,
        hosts,
        ssh: { user: runAs.user, privateKey: { file: l.secrets.sshKey }, connectTimeoutSeconds: 5 },
        postgres: {
          database: 'postgres',
          user: 'switchyard',
          password: { file: l.secrets.pgPassword },
          replication: { user: 'replicator', password: { file: l.secrets.replPassword } },
          passfile: l.secrets.pgpass,
          maxLagBytes: 16 * 1024 * 1024,
          dataLossThresholdBytes: 0,
          nodes,
        },
        traffic: [
          {
            kind: 'haproxy',
            name: 'front',
            admin: { address: l.shared, port: PORTS.frontAdmin },
            backend: 'postgres',
            servers: { dc1: 'dc1', dc2: 'dc2' },
            listen: { address: l.shared, port: PORTS.front },
            // haproxy.cfg's server-state-file: every move is saved there, so a restarted front keeps it.
            stateFile: { host: SHARED_HOST, path: l.frontState },
          },
          { kind: 'elastic-ip', name: 'eip', publicIp: ELASTIC_IP },
          { kind: 'private-ip', name: 'vip', address: PRIVATE_VIP },
          {
            kind: 'command',
            name: 'dns',
            host: DNS_HOST,
            move: dnsCommand(l, tools, 'set', '{site}', '{address}', '{port}'),
            read: dnsCommand(l, tools, 'get'),
            timeoutSeconds: 30,
          },
        ],
        ec2: {
          region: EC2_REGION,
          endpoint: ec2Endpoint(l),
          credentials: { accessKeyId: { file: l.secrets.awsAccessKeyId }, secretAccessKey: { file: l.secrets.awsSecretAccessKey } },
        },
        checkpoints: { approvers: [], twoPerson: false, remindAfter: '15m', deadline: '2h', onDeadline: 'abort' },
        backup: {
          host: BACKUP_HOST,
          root: l.backupsDir,
          binDir: tools.pgBinDir,
          passfile: l.secrets.pgpass,
          kinds: ['pg', 'ebs'],
          keepLast: 7,
          maxAge: '14d',
          verifyQueries: ['SELECT count(*) FROM public.sandbox_rows'],
          store: {
            bucket: STORE_BUCKET,
            prefix: STORE_PREFIX,
            region: EC2_REGION,
            endpoint: ec2Endpoint(l),
            credentials: { accessKeyId: { file: l.secrets.awsAccessKeyId }, secretAccessKey: { file: l.secrets.awsSecretAccessKey } },
            // The AWS CLI's part size: a backup of a few MiB is one PUT, a larger one a multipart upload.
            partSizeMiB: 8,
          },
          files: { ca: { host: FILES_HOST, paths: [caDir(l)], mode: 'keep-permissions', encrypt: true, key: { file: caSetKeyFile(l) } } },
          // WAL archiving for point-in-time restores: runs once `switchyard archive demo` starts it.
          archive: { slot: 'switchyard_archive', intervalSeconds: 2 },
        },
      },
    },
  };
}

/** Render, validate (parseTopology) and write <dir>/switchyard.yaml when its content changed. */
export function writeTopology(l: Layout, runAs: RunAs, tools: TopologyTools, access?: SandboxAccess): string {
  const header =
    `# switchyard topology of the sandbox in ${l.dir} (cluster "${l.cluster}", net ${l.net}).\n` +
    `# Generated by \`switchyard sandbox up\`, which rewrites it: edit a copy, not this file.\n` +
    `# Point a shell at it: export SWITCHYARD_CONFIG=${l.topologyFile}\n`;
  const doc = new Document(buildTopology(l, runAs, tools, access));
  // Commands (argument lists) on one line each: ["touch", "/…/maintenance"].
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((i) => isScalar(i))) node.flow = true;
    },
  });
  const text = header + doc.toString({ lineWidth: 0 });
  parseTopology(text, l.topologyFile); // throws a ConfigError naming the path inside the file
  if (!existsSync(l.topologyFile) || readFileSync(l.topologyFile, 'utf8') !== text) {
    const tmp = `${l.topologyFile}.tmp`;
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, l.topologyFile);
  }
  return l.topologyFile;
}
