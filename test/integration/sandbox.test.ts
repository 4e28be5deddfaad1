/**
 * The sandbox, checked the way the runbooks will use it: every part runs, the topology it writes
 * is valid, replication streams, the front leads to the primary, maintenance mode and services
 * work over ssh with pinned host keys, EC2 holds the instances, the Elastic IP and the secondary
 * private IP, every traffic driver (front, eip, vip, dns) points at dc1 and moves with the real
 * activities, each site's afterPromote hook runs on its app host, faults can be injected and
 * undone, up is idempotent, and down leaves nothing behind.
 *
 *   node --import tsx --test test/integration/sandbox.test.ts
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DescribeAddressesCommand, DescribeInstancesCommand, DescribeNetworkInterfacesCommand, DescribeVolumesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { Client as PgClient } from 'pg';
import { Client, Connection } from '@temporalio/client';
import { sandboxStatus, sandboxUp, startPart, stopPart, type SandboxPart, type SandboxStatus } from '../../sandbox';
import { temporalEndpoints } from '../../sandbox/layout';
import { PRIVATE_VIP } from '../../sandbox/ec2';
import { createActivities } from '../../src/activities';
import { listProcs, tcpProbe } from '../../sandbox/procs';
import { getCluster } from '../../src/topology/load';
import type { ClusterConfig } from '../../src/topology/schema';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';

// ---------------------------------------------------------------------------------------------
// helpers

function part(s: SandboxStatus, name: string): SandboxPart {
  const p = s.parts.find((x) => x.name === name);
  assert.ok(p, `part ${name} in status`);
  return p;
}

async function statusOf(sb: TestSandbox): Promise<SandboxStatus> {
  const s = await sandboxStatus(sb.opts);
  assert.ok(s, 'sandbox status');
  return s;
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A status URL names the passfile, as libpq reads it; node-postgres does not read passfiles, so
 * the login's password is looked up there, as libpq would.
 */
function withPassfile(url: string): string {
  const u = new URL(url);
  const passfile = u.searchParams.get('passfile');
  if (!passfile) return url;
  const line = readFileSync(passfile, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[3] === decodeURIComponent(u.username));
  assert.ok(line, `${passfile} has a line for ${u.username}`);
  u.password = encodeURIComponent(line.split(':').slice(4).join(':'));
  u.searchParams.delete('passfile');
  return u.toString();
}

async function query<T extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new PgClient({ connectionString: withPassfile(url), connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

function secret(file: string | undefined): string {
  assert.ok(file, 'a secret file reference');
  return readFileSync(file, 'utf8').trim();
}

/** postgres URL for any address/port with the sandbox's switchyard password. */
function pgUrl(c: ClusterConfig, address: string, port: number): string {
  return `postgresql://switchyard:${encodeURIComponent(secret(c.postgres.password?.file))}@${address}:${port}/postgres`;
}

const shQuote = (a: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], timeoutMs = 20_000): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run an argv on a host of the topology with the OpenSSH client, accepting only the pinned host key. */
function ssh(sb: TestSandbox, c: ClusterConfig, host: string, argv: string[]): Promise<Exec> {
  const h = c.hosts[host];
  const key = c.ssh.privateKey.file;
  assert.ok(key && existsSync(key), 'the ssh private key file');
  const knownHosts = join(sb.dir, 'test_known_hosts');
  writeFileSync(
    knownHosts,
    Object.values(c.hosts)
      .map((x) => `[${x.address}]:${x.port} ${x.hostKey}`)
      .join('\n') + '\n',
  );
  return exec('ssh', [
    '-i',
    key,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'ConnectTimeout=5',
    '-o',
    'LogLevel=ERROR',
    '-p',
    String(h.port),
    `${c.ssh.user}@${h.address}`,
    '--',
    argv.map(shQuote).join(' '),
  ]);
}

function haproxyAdmin(address: string, port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    let out = '';
    s.setTimeout(3000, () => s.destroy(new Error('haproxy admin timeout')));
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.connect(port, address, () => s.write(`${command}\n`));
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Processes whose command line mentions the directory. */
function processesMentioning(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(dir)) out.push(`${e}: ${cmd}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Interfaces of these instances holding `address`, and whether it is their primary address. */
async function vipHolders(
  ec2: EC2Client,
  address: string,
  instanceIds: string[],
): Promise<{ instanceId: string | undefined; deviceIndex: number | undefined; primary: boolean }[]> {
  const r = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: instanceIds }] }));
  return (r.NetworkInterfaces ?? []).flatMap((n) =>
    (n.PrivateIpAddresses ?? [])
      .filter((p) => p.PrivateIpAddress === address)
      .map((p) => ({ instanceId: n.Attachment?.InstanceId, deviceIndex: n.Attachment?.DeviceIndex, primary: p.Primary === true })),
  );
}

// ---------------------------------------------------------------------------------------------

describe('sandbox', () => {
  let sb: TestSandbox;
  let c: ClusterConfig;

  before(async () => {
    sb = await startTestSandbox();
    c = getCluster(sb.topology, 'demo');
  });
  after(async () => {
    await sb?.down();
  });

  it("comes up with every part running (the standby site's services stopped by design)", () => {
    const names = sb.status.parts.map((p) => p.name);
    assert.deepEqual(names.sort(), [
      'codec',
      'dc1-app/app',
      'dc1-app/fault-detection',
      'dc1-app/notification',
      'dc1-app/sshd',
      'dc1-db/postgres',
      'dc1-db/sshd',
      'dc2-app/app',
      'dc2-app/fault-detection',
      'dc2-app/notification',
      'dc2-app/sshd',
      'dc2-db/postgres',
      'dc2-db/sshd',
      'ec2',
      'front',
      'shared/sshd',
      'temporal',
    ]);
    for (const p of sb.status.parts) {
      const standbyService = p.kind === 'service' && p.site === 'dc2';
      assert.equal(p.state, standbyService ? 'stopped' : 'running', `${p.name}: ${p.detail ?? ''}`);
      assert.equal(p.expected, standbyService ? 'stopped' : 'running', p.name);
      if (p.state === 'running') assert.ok(p.pid && p.pid > 0, `${p.name} has a pid`);
    }
    assert.equal(sb.status.temporal.address, temporalEndpoints(sb.net).address);
    assert.equal(sb.status.temporal.ui, `http://127.${sb.net}.0.1:8233`);
    assert.equal(sb.status.temporal.codecEndpoint, `http://127.${sb.net}.0.1:8888`);
    assert.equal(part(sb.status, 'codec').state, 'running');
    // Database URLs name the passfile, never a password.
    for (const n of ['dc1-db/postgres', 'dc2-db/postgres']) {
      const url = part(sb.status, n).url!;
      assert.equal(new URL(url).password, '', `${n}: no password in ${url}`);
      assert.equal(new URL(url).searchParams.get('passfile'), join(sb.dir, 'secrets', 'pgpass'));
    }
    assert.equal(part(sb.status, 'dc1-db/postgres').host, `127.${sb.net}.1.1`);
    assert.equal(part(sb.status, 'dc2-app/app').host, `127.${sb.net}.2.2`);
  });

  it('runs Temporal: workflows can be started, the search attributes exist, the UI answers', async () => {
    const connection = await Connection.connect({ address: sb.status.temporal.address, connectTimeout: 5000 });
    try {
      const client = new Client({ connection, namespace: 'default' });
      const handle = await client.workflow.start('sandboxProbe', { taskQueue: 'sandbox-test-no-worker', workflowId: `sandbox-test-${Date.now()}` });
      assert.equal((await handle.describe()).status.name, 'RUNNING');
      await handle.terminate('sandbox test done');
      const sa = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      for (const a of ['SwitchyardCluster', 'SwitchyardOperation', 'SwitchyardStep', 'SwitchyardWaitingFor', 'SwitchyardVerdict'])
        assert.ok(sa.customAttributes && a in sa.customAttributes, `search attribute ${a}`);
    } finally {
      await connection.close();
    }
    assert.equal((await httpGet(sb.status.temporal.ui)).status, 200);
    // Encryption on: the codec server answers, for the UI's origin only.
    assert.equal((await httpGet(`${sb.status.temporal.codecEndpoint}/healthz`)).status, 200);
    const pre = await fetch(`${sb.status.temporal.codecEndpoint}/decode`, { method: 'OPTIONS', headers: { origin: sb.status.temporal.ui } });
    assert.equal(pre.headers.get('access-control-allow-origin'), sb.status.temporal.ui);
    assert.deepEqual(
      sb.topology.temporal?.codec?.keys.map((k) => k.id),
      ['sandbox-1'],
    );
  });

  it('writes a valid topology that describes the sandbox', () => {
    assert.equal(sb.config, join(sb.dir, 'switchyard.yaml'));
    assert.equal(c.preferredPrimary, 'dc1');
    assert.deepEqual(Object.keys(c.hosts).sort(), ['dc1-app', 'dc1-db', 'dc2-app', 'dc2-db', 'shared']);
    assert.equal(c.hosts.shared.site, undefined, "the front's host is shared, of no site");
    assert.equal(c.postgres.nodes['dc1-db'].slot, 'dc1_db');
    assert.equal(c.postgres.nodes['dc2-db'].slot, 'dc2_db');
    assert.equal(c.postgres.nodes['dc2-db'].host, `127.${sb.net}.2.1`);
    assert.ok(c.postgres.nodes['dc1-db'].configDir && existsSync(join(c.postgres.nodes['dc1-db'].configDir, 'postgresql.conf')));
    assert.deepEqual(
      c.traffic.map((t) => `${t.kind}:${t.name}`),
      ['haproxy:front', 'elastic-ip:eip', 'private-ip:vip', 'command:dns'],
    );
    const dns = c.traffic.find((t) => t.name === 'dns');
    assert.ok(dns && dns.kind === 'command');
    assert.equal(dns.host, 'dc2-app');
    assert.deepEqual(dns.move.slice(-3), ['{site}', '{address}', '{port}']);
    for (const site of ['dc1', 'dc2']) {
      const hooks = c.sites[site].hooks.afterPromote;
      assert.deepEqual(
        hooks.map((h) => [h.name, h.host]),
        [['repoint-app', `${site}-app`]],
        `afterPromote hooks of ${site}`,
      );
      assert.deepEqual(hooks[0].command.slice(-3), [join(sb.dir, `${site}-app`, 'db-target'), c.postgres.nodes[`${site}-db`].host, '5432']);
    }
    assert.ok(c.backup?.root.startsWith(sb.dir));
    for (const f of [c.postgres.password?.file, c.postgres.replication.password?.file, c.ssh.privateKey.file]) {
      assert.ok(f && existsSync(f), `secret ${f}`);
      assert.equal(statSync(f).mode & 0o777, 0o600, `${f} is 0600`);
    }
    // No password sits in the standby's postgresql.auto.conf: it uses the passfile.
    const auto = readFileSync(join(c.postgres.nodes['dc2-db'].dataDir, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, /passfile=/);
    assert.doesNotMatch(auto, /password=/);
  });

  it('replicates: a row written on dc1 appears on dc2, which streams through slot dc2_db', async () => {
    const dc1 = part(sb.status, 'dc1-db/postgres').url!;
    // libpq itself logs in with the status URL (the password from the passfile it names).
    const psql = await exec(join(c.postgres.nodes['dc1-db'].binDir, 'psql'), [dc1, '-tAc', 'SELECT 1']);
    assert.equal(psql.stdout.trim(), '1', `psql with ${dc1}: ${psql.stderr}`);
    const dc2 = part(sb.status, 'dc2-db/postgres').url!;
    const note = `test row ${Date.now()}`;
    await query(dc1, 'INSERT INTO public.sandbox_rows (note) VALUES ($1)', [note]);
    await waitFor('the row on dc2', async () => (await query(dc2, 'SELECT 1 FROM public.sandbox_rows WHERE note = $1', [note])).length === 1, 10_000);
    const [rec] = await query<{ r: boolean }>(dc2, 'SELECT pg_is_in_recovery() AS r');
    assert.equal(rec.r, true);
    const rows = await query<{ slot_name: string; state: string; application_name: string }>(
      dc1,
      'SELECT s.slot_name, r.state, r.application_name FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid',
    );
    assert.deepEqual(rows, [{ slot_name: 'dc2_db', state: 'streaming', application_name: 'dc2-db' }]);
    const seeded = await query<{ n: string }>(dc1, 'SELECT count(*) AS n FROM public.sandbox_rows');
    assert.ok(Number(seeded[0].n) >= 4);
    const [cs] = await query<{ data_checksums: string }>(dc1, 'SHOW data_checksums');
    assert.equal(cs.data_checksums, 'on');
  });

  it('sends connections through the front to dc1, and moves them when a driver moves traffic', async () => {
    const front = c.traffic.find((t) => t.kind === 'haproxy');
    assert.ok(front && front.kind === 'haproxy');
    const viaFront = pgUrl(c, front.listen.address, front.listen.port);
    const [r] = await query<{ addr: string; rec: boolean }>(viaFront, 'SELECT host(inet_server_addr()) AS addr, pg_is_in_recovery() AS rec');
    assert.deepEqual(r, { addr: `127.${sb.net}.1.1`, rec: false });
    const state = await haproxyAdmin(front.admin.address, front.admin.port, 'show servers state postgres');
    const admin = Object.fromEntries(
      state
        .split('\n')
        .filter((l) => /^\d+ postgres /.test(l))
        .map((l) => l.split(' '))
        .map((f) => [f[3], Number(f[6])]),
    );
    assert.equal(admin.dc1 & 1, 0, 'dc1 is not in maintenance');
    assert.equal(admin.dc2 & 1, 1, 'dc2 is in maintenance');
    // What a traffic driver does:
    await haproxyAdmin(front.admin.address, front.admin.port, 'set server postgres/dc2 state ready');
    await haproxyAdmin(front.admin.address, front.admin.port, 'set server postgres/dc1 state maint');
    try {
      const [moved] = await query<{ addr: string }>(viaFront, 'SELECT host(inet_server_addr()) AS addr');
      assert.equal(moved.addr, `127.${sb.net}.2.1`);
    } finally {
      await haproxyAdmin(front.admin.address, front.admin.port, 'set server postgres/dc1 state ready');
      await haproxyAdmin(front.admin.address, front.admin.port, 'set server postgres/dc2 state maint');
    }
  });

  it('reaches every host over ssh with the client key, and each host key is the pinned one', async () => {
    for (const [name, h] of Object.entries(c.hosts)) {
      const r = await ssh(sb, c, name, ['id', '-un']);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), c.ssh.user);
      const scan = await exec('ssh-keyscan', ['-p', String(h.port), '-t', 'ed25519', h.address]);
      const offered = scan.stdout.split('\n').find((l) => l.includes('ssh-ed25519'));
      assert.ok(offered, `${name}: ssh-keyscan ${scan.stderr}`);
      assert.equal(offered.split(' ').slice(1, 3).join(' '), h.hostKey, `${name} offers its pinned key`);
    }
  });

  it("puts a site in maintenance with the topology's commands: the app answers 503, then 200 again", async () => {
    const site = c.sites.dc1;
    const url = site.app!.url;
    assert.deepEqual(await httpGet(url), { status: 200, body: 'dc1 ok\n' });
    const m = site.maintenance!;
    assert.equal((await ssh(sb, c, m.host, m.status)).code !== 0, true, 'maintenance off at start');
    assert.equal((await ssh(sb, c, m.host, m.on)).code, 0);
    try {
      assert.equal((await ssh(sb, c, m.host, m.status)).code, 0, 'maintenance on');
      assert.equal((await httpGet(url)).status, 503);
      assert.equal((await httpGet(c.sites.dc2.app!.url)).status, 200, 'dc2 is not affected');
    } finally {
      assert.equal((await ssh(sb, c, m.host, m.off)).code, 0);
    }
    assert.equal((await httpGet(url)).status, 200);
  });

  it("runs services with start/stop/status over ssh: dc1's run, dc2's are stopped until started", async () => {
    const fd1 = c.sites.dc1.services['fault-detection'];
    const fd2 = c.sites.dc2.services['fault-detection'];
    assert.equal((await ssh(sb, c, fd1.host, fd1.status)).code, 0);
    assert.notEqual((await ssh(sb, c, fd2.host, fd2.status)).code, 0);
    const started = await ssh(sb, c, fd2.host, fd2.start);
    assert.equal(started.code, 0, started.stderr);
    assert.equal((await ssh(sb, c, fd2.host, fd2.status)).code, 0);
    assert.equal(part(await statusOf(sb), 'dc2-app/fault-detection').state, 'running');
    assert.equal((await ssh(sb, c, fd2.host, fd2.stop)).code, 0);
    assert.notEqual((await ssh(sb, c, fd2.host, fd2.status)).code, 0);
    const s = part(await statusOf(sb), 'dc2-app/fault-detection');
    assert.deepEqual([s.state, s.expected], ['stopped', 'stopped']);
  });

  it('shows the EC2 layout through the AWS SDK: two tagged instances, the Elastic IP and the secondary private IP on dc1', async () => {
    const ec2 = new EC2Client({
      region: c.ec2!.region,
      endpoint: c.ec2!.endpoint,
      credentials: { accessKeyId: secret(c.ec2!.credentials!.accessKeyId.file), secretAccessKey: secret(c.ec2!.credentials!.secretAccessKey.file) },
    });
    try {
      const res = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:switchyard:cluster', Values: ['demo'] }] }));
      const instances = (res.Reservations ?? []).flatMap((r) => r.Instances ?? []);
      const byNode = Object.fromEntries(instances.map((i) => [i.Tags?.find((t) => t.Key === 'switchyard:node')?.Value ?? '', i]));
      assert.deepEqual(Object.keys(byNode).sort(), ['dc1-db', 'dc2-db']);
      assert.equal(byNode['dc1-db'].PrivateIpAddress, '10.0.1.10');
      assert.equal(byNode['dc2-db'].PrivateIpAddress, '10.0.2.10');
      assert.equal(byNode['dc1-db'].Tags?.find((t) => t.Key === 'Name')?.Value, 'dc1-db');
      const vols = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [byNode['dc2-db'].InstanceId!] }] }));
      assert.equal(vols.Volumes?.length, 1);
      assert.equal(vols.Volumes![0].Tags?.find((t) => t.Key === 'switchyard:node')?.Value, 'dc2-db');
      const eip = c.traffic.find((t) => t.kind === 'elastic-ip');
      assert.ok(eip && eip.kind === 'elastic-ip');
      const addr = await ec2.send(new DescribeAddressesCommand({ PublicIps: [eip.publicIp] }));
      assert.equal(addr.Addresses?.[0]?.InstanceId, byNode['dc1-db'].InstanceId);
      // The vip driver's address: a secondary address of dc1-db's primary interface only.
      const vip = c.traffic.find((t) => t.kind === 'private-ip');
      assert.ok(vip && vip.kind === 'private-ip');
      assert.equal(vip.address, PRIVATE_VIP);
      const holders = await vipHolders(ec2, vip.address, [byNode['dc1-db'].InstanceId!, byNode['dc2-db'].InstanceId!]);
      assert.deepEqual(holders, [{ instanceId: byNode['dc1-db'].InstanceId, deviceIndex: 0, primary: false }]);
    } finally {
      ec2.destroy();
    }
  });

  it('every traffic driver points at dc1 after up; vip and dns move to dc2 and back with the real activities', async () => {
    const act = createActivities({ topology: () => sb.topology });
    for (const d of c.traffic) {
      const r = await act.trafficRead({ cluster: 'demo', driver: d.name });
      assert.equal(r.site, 'dc1', `${d.name}: ${r.detail}`);
    }
    const record = join(sb.dir, 'dns', 'db.demo');
    assert.equal(readFileSync(record, 'utf8'), `dc1 127.${sb.net}.1.1:5432\n`);
    const ec2 = new EC2Client({
      region: c.ec2!.region,
      endpoint: c.ec2!.endpoint,
      credentials: { accessKeyId: secret(c.ec2!.credentials!.accessKeyId.file), secretAccessKey: secret(c.ec2!.credentials!.secretAccessKey.file) },
    });
    const ids = (await act.ec2Instances({ cluster: 'demo' })).map((i) => i.instanceId!);
    try {
      for (const [site, n] of [
        ['dc2', 2],
        ['dc1', 1],
      ] as const) {
        const vip = await act.trafficMove({ cluster: 'demo', driver: 'vip', site });
        assert.deepEqual([vip.site, vip.changed], [site, true], vip.detail);
        assert.deepEqual(await vipHolders(ec2, PRIVATE_VIP, ids), [{ instanceId: ids[n - 1], deviceIndex: 0, primary: false }]);
        const dns = await act.trafficMove({ cluster: 'demo', driver: 'dns', site });
        assert.deepEqual([dns.site, dns.changed], [site, true], dns.detail);
        assert.equal(readFileSync(record, 'utf8'), `${site} 127.${sb.net}.${n}.1:5432\n`);
      }
    } finally {
      ec2.destroy();
    }
    // The record stays the run-as user's to rewrite, and no temp file is left beside it.
    assert.deepEqual(readdirSync(join(sb.dir, 'dns')), ['db.demo']);
    assert.equal(statSync(record).uid, statSync(join(sb.dir, 'dc2-app')).uid);
  });

  it("runs each site's afterPromote hook on that site's app host, recording the new primary as the app's database", async () => {
    for (const site of ['dc2', 'dc1'] as const) {
      const [hook] = c.sites[site].hooks.afterPromote;
      const target = join(sb.dir, `${site}-app`, 'db-target');
      const other = join(sb.dir, `${site === 'dc1' ? 'dc2' : 'dc1'}-app`, 'db-target');
      const otherBefore = existsSync(other) ? readFileSync(other, 'utf8') : null;
      const r = await ssh(sb, c, hook.host, hook.command);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(target, 'utf8'), `${c.postgres.nodes[`${site}-db`].host}:5432\n`);
      assert.equal(existsSync(other) ? readFileSync(other, 'utf8') : null, otherBefore, "the other site's app is not repointed");
    }
  });

  it('injects faults and undoes them: stop, kill and pause, then startPart', async () => {
    // A clean stop of the standby, then start: streaming again.
    await stopPart(sb.opts, 'dc2-db/postgres');
    assert.equal(part(await statusOf(sb), 'dc2-db/postgres').state, 'stopped');
    assert.equal(await tcpProbe(`127.${sb.net}.2.1`, 5432, 500), false);
    await startPart(sb.opts, 'dc2-db/postgres');
    assert.equal(part(await statusOf(sb), 'dc2-db/postgres').state, 'running');
    const dc1 = part(sb.status, 'dc1-db/postgres').url!;
    await waitFor(
      'dc2 streaming again',
      async () => (await query<{ state: string }>(dc1, "SELECT state FROM pg_stat_replication WHERE state = 'streaming'")).length === 1,
    );

    // Pause the primary (SIGSTOP): status says so; startPart resumes it.
    await stopPart(sb.opts, 'dc1-db/postgres', 'pause');
    const paused = part(await statusOf(sb), 'dc1-db/postgres');
    assert.equal(paused.state, 'stopped');
    assert.match(paused.detail ?? '', /paused/);
    // The whole server is frozen, not only the postmaster (its children run in sessions of their own).
    const kids = listProcs().filter((p) => p.ppid === paused.pid);
    assert.ok(kids.length >= 3, `the postmaster has children (${kids.length})`);
    for (const k of kids) assert.match(k.state, /^[Tt]$/, `child ${k.pid} is stopped`);
    await startPart(sb.opts, 'dc1-db/postgres');
    assert.ok(
      listProcs()
        .filter((p) => p.ppid === paused.pid)
        .every((p) => !/^[Tt]$/.test(p.state)),
      'every child resumed',
    );
    assert.equal((await query<{ one: number }>(dc1, 'SELECT 1 AS one'))[0].one, 1);

    // Kill a host's sshd: unreachable; start it again: reachable, same host key.
    await stopPart(sb.opts, 'dc2-app/sshd', 'kill');
    assert.equal(part(await statusOf(sb), 'dc2-app/sshd').state, 'stopped');
    assert.notEqual((await ssh(sb, c, 'dc2-app', ['true'])).code, 0);
    await startPart(sb.opts, 'dc2-app/sshd');
    assert.equal((await ssh(sb, c, 'dc2-app', ['true'])).code, 0);

    // Kill a whole host (all its parts): a killed-but-enabled service comes back with up.
    await stopPart(sb.opts, 'dc1-app', 'kill');
    const down = await statusOf(sb);
    for (const n of ['dc1-app/sshd', 'dc1-app/app', 'dc1-app/fault-detection', 'dc1-app/notification']) assert.equal(part(down, n).state, 'stopped', n);
    assert.equal(part(down, 'dc1-db/postgres').state, 'running', 'other hosts untouched');
    const again = await sandboxUp(sb.opts);
    for (const n of ['dc1-app/sshd', 'dc1-app/app', 'dc1-app/fault-detection', 'dc1-app/notification']) assert.equal(part(again, n).state, 'running', n);
    assert.equal(part(again, 'dc2-app/fault-detection').state, 'stopped', 'a stopped service stays stopped');
  });

  it('is idempotent: up again with everything running changes nothing', async () => {
    const before = await statusOf(sb);
    const mtime = statSync(sb.config).mtimeMs;
    const again = await sandboxUp(sb.opts);
    assert.deepEqual(
      again.parts.map((p) => [p.name, p.pid, p.state]),
      before.parts.map((p) => [p.name, p.pid, p.state]),
    );
    assert.equal(statSync(sb.config).mtimeMs, mtime, 'topology not rewritten');
  });

  it('down stops every process of the sandbox and removes its directory', async () => {
    // A service started over ssh (outside anything up started) must be swept too.
    const n2 = c.sites.dc2.services.notification;
    assert.equal((await ssh(sb, c, n2.host, n2.start)).code, 0);
    assert.ok(processesMentioning(sb.dir).length > 0);
    await sb.down();
    assert.deepEqual(processesMentioning(sb.dir), []);
    assert.equal(existsSync(sb.dir), false);
    assert.equal(await sandboxStatus(sb.opts), null);
    const t = temporalEndpoints(sb.net);
    for (const [addr, port] of [
      [t.host, t.port],
      [t.uiHost, t.uiPort],
      [`127.${sb.net}.1.1`, 5432],
      [`127.${sb.net}.0.1`, 15432],
      [`127.${sb.net}.2.2`, 2222],
    ] as const)
      assert.equal(await tcpProbe(addr, port, 500), false, `${addr}:${port} closed`);
  });
});
