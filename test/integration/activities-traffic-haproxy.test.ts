/**
 * The haproxy traffic driver against a real HAProxy (runtime API on TCP, level admin) in front of
 * two tiny TCP backends on 127.0.93.1, and against the sandbox's front (HAProxy before the two
 * PostgreSQL nodes, its state file written over SSH through the shared host). What counts is
 * where a new client connection through the front lands, that clients of the old backend are cut
 * off, and that a move survives HAProxy being killed and started again from its configuration.
 */
import { loadTools } from '../../src/tools';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createActivities, type Activities } from '../../src/activities';
import { haproxyCommand, parseServersState, takesTraffic } from '../../src/activities/traffic/haproxy';
import { Client as PgClient } from 'pg';
import { sandboxUp, startPart, stopPart } from '../../sandbox';
import { getCluster } from '../../src/topology/load';
import type { ClusterConfig } from '../../src/topology/schema';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';
import { canConnect, Daemon, freePort, rejection, removeDir, tempDir, topology, waitFor } from './activities-harness';

const ADDR = '127.0.93.1';

let dir: string | undefined;
let haproxy: Daemon | undefined;
const backends: Server[] = [];
const clients = new Set<Socket>();
let act: Activities;
let front: number;
let admin: number;
let ports: { dc1: number; dc2: number };

/** A backend that greets every connection with its site's name and keeps it open. */
function backend(name: string, port: number): Promise<Server> {
  const srv = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.write(`${name}\n`);
  });
  backends.push(srv);
  return new Promise((resolve) => srv.listen(port, ADDR, () => resolve(srv)));
}

/** Connect through the front; resolves with the greeting and the still-open socket. */
function through(): Promise<{ greeting: string; sock: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    clients.add(sock);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    let buf = '';
    sock.setTimeout(3000, () => reject(new Error('no greeting through the front')));
    sock.once('error', reject);
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.includes('\n')) {
        sock.setTimeout(0);
        resolve({ greeting: buf.trim(), sock, closed });
      }
    });
    sock.connect(front, ADDR);
  });
}

async function landsOn(): Promise<string> {
  const c = await through();
  c.sock.destroy();
  return c.greeting;
}

const hap = (cmd: string) => haproxyCommand(ADDR, admin, cmd, 3000);

before(async () => {
  dir = tempDir('haproxy');
  [front, admin] = [await freePort(ADDR), await freePort(ADDR)];
  ports = { dc1: await freePort(ADDR), dc2: await freePort(ADDR) };
  await backend('dc1', ports.dc1);
  await backend('dc2', ports.dc2);
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global
  stats socket ipv4@${ADDR}:${admin} level admin
  stats timeout 10s

defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s

frontend pg_front
  bind ${ADDR}:${front}
  default_backend pg

backend pg
  server pg-dc1 ${ADDR}:${ports.dc1}
  server pg-dc2 ${ADDR}:${ports.dc2} disabled
`,
  );
  haproxy = Daemon.start('haproxy', loadTools().haproxy, ['-db', '-f', cfg]);
  await waitFor('haproxy to listen', async () => (await canConnect(ADDR, front)) && (await canConnect(ADDR, admin))).catch((err) => {
    throw new Error(`${err}\n${haproxy?.output}`);
  });

  const deadAdmin = await freePort(ADDR);
  const cluster = (adminPort: number) => ({
    preferredPrimary: 'dc1',
    sites: { dc1: {}, dc2: {} },
    hosts: {
      h1: { site: 'dc1', address: '127.0.93.11', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5' },
      h2: { site: 'dc2', address: '127.0.93.12', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5' },
    },
    ssh: { user: 'postgres', privateKey: { env: 'UNUSED_KEY' } },
    postgres: {
      user: 'postgres',
      replication: { user: 'postgres' },
      nodes: {
        db1: { site: 'dc1', sshHost: 'h1', host: ADDR, port: ports.dc1, dataDir: '/x', binDir: '/x', slot: 'db1' },
        db2: { site: 'dc2', sshHost: 'h2', host: ADDR, port: ports.dc2, dataDir: '/x', binDir: '/x', slot: 'db2' },
      },
    },
    traffic: [
      {
        kind: 'haproxy' as const,
        name: 'front',
        admin: { address: ADDR, port: adminPort },
        backend: 'pg',
        servers: { dc1: 'pg-dc1', dc2: 'pg-dc2' },
        listen: { address: ADDR, port: front },
      },
    ],
  });
  const top = topology({ version: 1, clusters: { main: cluster(admin), down: cluster(deadAdmin) } });
  act = createActivities({ topology: () => top });
});

after(async () => {
  for (const c of clients) c.destroy();
  await haproxy?.stop();
  await Promise.all(backends.map((b) => new Promise((r) => b.close(r))));
  removeDir(dir);
});

describe('haproxy driver', () => {
  it('reads the one ready server as the site traffic points at', async () => {
    const r = await act.trafficRead({ cluster: 'main', driver: 'front' });
    assert.deepEqual([r.kind, r.site, r.target], ['haproxy', 'dc1', `${ADDR}:${ports.dc1}`]);
    assert.equal(await landsOn(), 'dc1');
  });

  it('moves: new connections reach the other backend and clients of the old one are cut off', async () => {
    const old = await through();
    assert.equal(old.greeting, 'dc1');
    const r = await act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc2' });
    assert.deepEqual([r.site, r.target, r.changed], ['dc2', `${ADDR}:${ports.dc2}`, true]);
    let timer: NodeJS.Timeout | undefined;
    const cut = await Promise.race([old.closed.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 3000)))]);
    clearTimeout(timer);
    assert.equal(cut, true, 'the session to the old backend was shut down');
    for (let i = 0; i < 5; i++) assert.equal(await landsOn(), 'dc2');
  });

  it('a second move to the same site changes nothing and keeps sessions', async () => {
    const cur = await through();
    const r = await act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc2' });
    assert.equal(r.changed, false);
    assert.equal(cur.sock.destroyed, false);
    cur.sock.destroy();
  });

  it('reads two ready servers as pointing nowhere, and a move repairs it', async () => {
    assert.equal((await hap('set server pg/pg-dc1 state ready')).trim(), '');
    const r = await act.trafficRead({ cluster: 'main', driver: 'front' });
    assert.equal(r.site, null);
    assert.match(r.detail, /^2 servers of backend pg in ready state/);
    const m = await act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc1' });
    assert.deepEqual([m.site, m.changed], ['dc1', true]);
    for (let i = 0; i < 5; i++) assert.equal(await landsOn(), 'dc1');
  });

  it('with the runtime API unreachable: a read reports it, a move throws a retryable error', async () => {
    const r = await act.trafficRead({ cluster: 'down', driver: 'front' });
    assert.equal(r.site, null);
    assert.match(r.detail, /^cannot read: HAProxy runtime API 127\.0\.93\.1:\d+: .*ECONNREFUSED/);
    const e = await rejection(act.trafficMove({ cluster: 'down', driver: 'front', site: 'dc2' }));
    assert.notEqual(e.nonRetryable, true);
    assert.equal(await landsOn(), 'dc1', 'nothing moved');
  });
});

describe('the sandbox front: a move stays moved (real HAProxy, PostgreSQL and sshd)', () => {
  let sb: TestSandbox;
  let c: ClusterConfig;
  let sact: Activities;
  let front: Extract<ClusterConfig['traffic'][number], { kind: 'haproxy' }>;
  const node = (site: string) => c.postgres.nodes[`${site}-db`].host;

  before(async () => {
    sb = await startTestSandbox();
    c = getCluster(sb.topology, 'demo');
    const f = c.traffic.find((t) => t.kind === 'haproxy');
    assert.ok(f && f.kind === 'haproxy');
    front = f;
    sact = createActivities({ topology: () => sb.topology });
  });
  after(async () => {
    await sb?.down();
  });

  const admin = (cmd: string) => haproxyCommand(front.admin.address, front.admin.port, cmd, 3000);
  /** Each server of backend postgres: in rotation (takes new connections) or not, by the runtime API. */
  const ready = async () => Object.fromEntries(parseServersState(await admin('show servers state postgres')).map((s) => [s.name, takesTraffic(s)]));
  const pgUrl = () =>
    `postgresql://switchyard:${encodeURIComponent(readFileSync(c.postgres.password!.file!, 'utf8').trim())}` +
    `@${front.listen.address}:${front.listen.port}/postgres`;
  /** A new client through the front: which PostgreSQL node answers. */
  const answeredBy = async () => {
    const client = new PgClient({ connectionString: pgUrl(), connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query<{ addr: string }>('SELECT host(inet_server_addr()) AS addr')).rows[0].addr;
    } finally {
      await client.end();
    }
  };
  const killFront = async () => {
    await stopPart(sb.opts, 'front', 'kill');
    // A SIGKILLed process's sockets close as the kernel tears it down: on a loaded machine that
    // can take a moment after kill() returned.
    let up = true;
    for (let i = 0; i < 100 && up; i++) {
      up = await canConnect(front.listen.address, front.listen.port);
      if (up) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(up, false, 'the front is down');
  };

  it("the generated topology names the shared host and haproxy.cfg's server-state-file as the stateFile", () => {
    assert.deepEqual(front.stateFile, { host: 'shared', path: join(sb.dir, 'front', 'servers.state') });
    assert.equal(c.hosts.shared.site, undefined, 'shared infrastructure has no site');
    assert.equal(c.hosts.shared.address, `127.${sb.net}.0.1`);
    assert.match(
      readFileSync(join(sb.dir, 'front', 'haproxy.cfg'), 'utf8'),
      new RegExp(`server-state-file ${front.stateFile!.path}\\n[\\s\\S]*load-server-state-from-file global`),
    );
  });

  it('moves to dc2 and still points there after HAProxy is SIGKILLed and started again (by startPart, then by up)', async () => {
    assert.equal(await answeredBy(), node('dc1'));
    const m = await sact.trafficMove({ cluster: 'demo', driver: 'front', site: 'dc2' });
    assert.deepEqual([m.site, m.changed], ['dc2', true]);
    assert.match(m.detail, /state saved to \S+servers\.state on shared/);
    for (const restart of ['startPart', 'up'] as const) {
      await killFront();
      if (restart === 'startPart') await startPart(sb.opts, 'front');
      else await sandboxUp(sb.opts);
      assert.deepEqual(await ready(), { dc1: false, dc2: true }, `after SIGKILL and ${restart}: show servers state`);
      assert.equal(await answeredBy(), node('dc2'), `after SIGKILL and ${restart}: a new connection reaches dc2's PostgreSQL`);
      assert.equal((await sact.trafficRead({ cluster: 'demo', driver: 'front' })).site, 'dc2');
    }
    // And back: dc2 is written `disabled` in haproxy.cfg, dc1 plain; both directions survive.
    assert.equal((await sact.trafficMove({ cluster: 'demo', driver: 'front', site: 'dc1' })).changed, true);
    await killFront();
    await startPart(sb.opts, 'front');
    assert.deepEqual(await ready(), { dc1: true, dc2: false });
    assert.equal(await answeredBy(), node('dc1'));
  });

  it('a retry after maint but before the sessions were shut still cuts the old sessions, and saves the state', async () => {
    // A client of dc1 through the front, then what a first attempt did before it was cut off.
    const old = new PgClient({ connectionString: pgUrl(), connectionTimeoutMillis: 5000 });
    const ended = new Promise<void>((resolve) => old.once('end', () => resolve()));
    old.on('error', () => undefined);
    await old.connect();
    try {
      assert.equal((await old.query<{ addr: string }>('SELECT host(inet_server_addr()) AS addr')).rows[0].addr, node('dc1'));
      assert.equal((await admin('set server postgres/dc1 state maint')).trim(), '');
      assert.equal((await admin('set server postgres/dc2 state ready')).trim(), '');
      assert.equal((await old.query('SELECT 1 AS one')).rows[0].one, 1, 'maint alone leaves the session to dc1 open');
      const r = await sact.trafficMove({ cluster: 'demo', driver: 'front', site: 'dc2' });
      assert.deepEqual([r.site, r.changed], ['dc2', false]);
      assert.match(r.detail, /^already points at dc2; kept: dc1 maint, dc2 ready, sessions on dc1 shut; state saved to /);
      let timer: NodeJS.Timeout | undefined;
      const cut = await Promise.race([ended.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), 5000)))]);
      clearTimeout(timer);
      assert.equal(cut, true, 'the session to dc1 was shut by the second move');
      await assert.rejects(old.query('SELECT 1'));
    } finally {
      await old.end().catch(() => undefined);
    }
    // The state the first attempt left unsaved is saved now: a killed front comes back on dc2.
    const saved = Object.fromEntries(parseServersState(readFileSync(front.stateFile!.path, 'utf8')).map((s) => [s.name, takesTraffic(s)]));
    assert.deepEqual(saved, { dc1: false, dc2: true });
    await killFront();
    await startPart(sb.opts, 'front');
    assert.equal(await answeredBy(), node('dc2'));
  });
});
