/**
 * A pg_auto_failover 2.0 formation on 127.0.0.1: a monitor and two nodes, each its own
 * `pg_autoctl run` service (it supervises its PostgreSQL and restarts it when it dies), node1
 * created first so it becomes the primary, node2 its secondary. The nodes get the sandbox's
 * settings appended to the postgresql.conf pg_autoctl made (after its include of
 * postgresql-auto-failover.conf, so they win); node2's copy comes with its pg_basebackup.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Peer } from './peer';
import { confLines, freePorts, PG_BIN, query, seed, sleep, waitHealthy, type PeerHost, type PeerNode } from './procs';

export async function autoFailoverFormation(h: PeerHost, tuning: Record<string, string>, bins: { pgAutoctl: string }): Promise<Peer> {
  const [pm, p1, p2] = await freePorts(3);
  const base = h.dir('pgaf');
  h.dir('xdg', 'config');
  h.dir('xdg', 'data');
  h.dir('xdg', 'run');
  const monitorData = join(base, 'monitor');
  const nodes: PeerNode[] = [
    { name: 'node1', host: '127.0.0.1', port: p1, conn: { host: '127.0.0.1', port: p1, user: 'postgres', database: 'postgres' }, dataDir: join(base, 'node1') },
    { name: 'node2', host: '127.0.0.1', port: p2, conn: { host: '127.0.0.1', port: p2, user: 'postgres', database: 'postgres' }, dataDir: join(base, 'node2') },
  ];
  // pg_autoctl reaches its PostgreSQL over Debian's default socket dir (/var/run/postgresql); each node's port is a free one, so its socket is its own.
  const env: Record<string, string> = {};
  const ctl = (args: string[], timeoutMs = 180_000) => h.must(bins.pgAutoctl, args, { env, timeoutMs });

  await ctl([
    'create',
    'monitor',
    '--pgdata',
    monitorData,
    '--pgport',
    String(pm),
    '--hostname',
    '127.0.0.1',
    '--auth',
    'trust',
    '--no-ssl',
    '--pgctl',
    `${PG_BIN}/pg_ctl`,
  ]);
  await h.spawn('pgaf-monitor', bins.pgAutoctl, ['run', '--pgdata', monitorData], env);
  const monitorUri = `postgres://autoctl_node@127.0.0.1:${pm}/pg_auto_failover?sslmode=disable`;
  for (let i = 0; !(await query({ connectionString: monitorUri }, 'SELECT 1')); i++) {
    if (i > 300) throw new Error(`pg_auto_failover: the monitor does not answer on ${monitorUri}`);
    await sleep(100);
  }

  const create = async (n: PeerNode) => {
    await ctl([
      'create',
      'postgres',
      '--pgdata',
      n.dataDir,
      '--pgport',
      String(n.port),
      '--listen',
      '127.0.0.1',
      '--hostname',
      '127.0.0.1',
      '--name',
      n.name,
      '--auth',
      'trust',
      '--no-ssl',
      '--monitor',
      monitorUri,
      '--pgctl',
      `${PG_BIN}/pg_ctl`,
    ]);
  };
  const run = (n: PeerNode) => h.spawn(`pgaf-${n.name}`, bins.pgAutoctl, ['run', '--pgdata', n.dataDir], env);

  const [n1, n2] = nodes;
  await create(n1);
  const conf = join(n1.dataDir, 'postgresql.conf');
  if (!readFileSync(conf, 'utf8').includes('bench/peers')) {
    appendFileSync(conf, `\n# bench/peers: the sandbox's settings (sandbox/postgres.ts postgresqlConf)\n${confLines(tuning)}\n`);
    appendFileSync(join(n1.dataDir, 'pg_hba.conf'), `\n# bench/peers: the writer and the checks\nhost all all 127.0.0.1/32 trust\n`);
  }
  await h.run(`${PG_BIN}/pg_ctl`, ['-D', n1.dataDir, '-m', 'fast', '-w', 'stop']);
  await run(n1);
  for (let i = 0; !(await query<{ r: boolean }>(n1.conn, 'SELECT pg_is_in_recovery() AS r'))?.some((r) => r.r === false); i++) {
    if (i > 600) throw new Error('pg_auto_failover: node1 does not take writes after its creation');
    await sleep(100);
  }
  await seed(n1.conn);
  await create(n2);
  await h.run(`${PG_BIN}/pg_ctl`, ['-D', n2.dataDir, '-m', 'fast', '-w', 'stop']);
  await run(n2);
  if (!(await waitHealthy(nodes, 180_000))) throw new Error('pg_auto_failover: node2 does not stream from node1 after setup');
  await waitStable(h, bins, env, monitorData, 120_000);

  return {
    name: 'pg_auto_failover',
    nodes,
    switchoverCommand: 'pg_autoctl perform switchover',
    failoverBy: "the monitor (and each node's pg_autoctl)",
    changes: ['--auth trust --no-ssl on loopback (the sandbox uses scram-sha-256 without TLS); no timeout changed (the monitor and keeper defaults)'],
    async switchover() {
      await h.must(bins.pgAutoctl, ['perform', 'switchover', '--pgdata', monitorData], { env, timeoutMs: 300_000 });
    },
    async restore() {
      // pg_autoctl restarts the killed PostgreSQL itself; the formation settles on its own (waited for by the caller too).
      await waitStable(h, bins, env, monitorData, 180_000);
    },
  };
}

/** Until the monitor reports one primary and one secondary, each at its goal state. */
async function waitStable(h: PeerHost, bins: { pgAutoctl: string }, env: Record<string, string>, monitorData: string, timeoutMs: number): Promise<void> {
  let last = '';
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(250)) {
    const r = await h.run(bins.pgAutoctl, ['show', 'state', '--pgdata', monitorData, '--json'], { env, timeoutMs: 10_000 });
    last = r.stdout || r.stderr;
    try {
      const nodes = JSON.parse(r.stdout) as { current_group_state: string; assigned_group_state: string }[];
      const states = nodes.map((n) => `${n.current_group_state}/${n.assigned_group_state}`).sort();
      if (states.join(',') === 'primary/primary,secondary/secondary') return;
    } catch {
      /* not ready */
    }
  }
  throw new Error(`pg_auto_failover: the formation did not settle (primary + secondary): ${last.slice(0, 500)}`);
}
