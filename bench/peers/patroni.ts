/**
 * A Patroni 3 pair on a one-member etcd (v3 API) on 127.0.0.1: node1 bootstraps the cluster,
 * node2 joins as its replica. The DCS timings are Patroni's defaults (ttl 30, loop_wait 10,
 * retry_timeout 10), written out in bootstrap.dcs so the output can say what they were. The
 * sandbox's settings go in as the bootstrap's postgresql.parameters.
 */
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Peer } from './peer';
import { freePorts, PG_BIN, query, seed, sleep, waitHealthy, type PeerHost, type PeerNode } from './procs';

export const PATRONI_DCS = { ttl: 30, loop_wait: 10, retry_timeout: 10 };

export async function patroniPair(h: PeerHost, tuning: Record<string, string>, bins: { patroni: string; patronictl: string; etcd: string }): Promise<Peer> {
  const [ec, ep, r1, r2, p1, p2] = await freePorts(6);
  const base = h.dir('patroni');
  await h.spawn('etcd', bins.etcd, [
    '--name',
    'peers',
    '--data-dir',
    h.dir('patroni', 'etcd'),
    '--listen-client-urls',
    `http://127.0.0.1:${ec}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${ec}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${ep}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${ep}`,
    '--initial-cluster',
    `peers=http://127.0.0.1:${ep}`,
    '--initial-cluster-state',
    'new',
  ]);
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${ec}/health`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (i > 300) throw new Error(`patroni: etcd does not answer on 127.0.0.1:${ec}`);
    await sleep(100);
  }

  const nodes: PeerNode[] = [
    {
      name: 'node1',
      host: '127.0.0.1',
      port: p1,
      conn: { host: '127.0.0.1', port: p1, user: 'postgres', database: 'postgres' },
      dataDir: join(base, 'node1', 'data'),
    },
    {
      name: 'node2',
      host: '127.0.0.1',
      port: p2,
      conn: { host: '127.0.0.1', port: p2, user: 'postgres', database: 'postgres' },
      dataDir: join(base, 'node2', 'data'),
    },
  ];
  const yml = (n: PeerNode) => join(base, n.name, 'patroni.yml');
  for (const n of nodes) {
    const rest = n.name === 'node1' ? r1 : r2;
    const run = h.dir('patroni', n.name, 'run');
    const config = {
      scope: 'peers',
      name: n.name,
      log: { level: 'INFO' },
      restapi: { listen: `127.0.0.1:${rest}`, connect_address: `127.0.0.1:${rest}` },
      etcd3: { hosts: [`127.0.0.1:${ec}`] },
      bootstrap: {
        dcs: { ...PATRONI_DCS, postgresql: { use_pg_rewind: true, use_slots: true, parameters: tuning } },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums'],
      },
      postgresql: {
        listen: `127.0.0.1:${n.port}`,
        connect_address: `127.0.0.1:${n.port}`,
        data_dir: n.dataDir,
        bin_dir: PG_BIN,
        pgpass: join(base, n.name, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: 'bench-peers' },
          replication: { username: 'replicator', password: 'bench-peers' },
        },
        parameters: { unix_socket_directories: run, cluster_name: `patroni-${n.name}` },
        pg_hba: ['local all all trust', 'local replication all trust', 'host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust'],
      },
    };
    h.write(yml(n), stringify(config), 0o600);
  }
  const start = (n: PeerNode) => h.spawn(`patroni-${n.name}`, bins.patroni, [yml(n)]);
  const [n1, n2] = nodes;
  await start(n1);
  for (let i = 0; !(await query<{ r: boolean }>(n1.conn, 'SELECT pg_is_in_recovery() AS r'))?.some((r) => r.r === false); i++) {
    if (i > 1200) throw new Error('patroni: node1 did not bootstrap a primary');
    await sleep(100);
  }
  await seed(n1.conn);
  await start(n2);
  if (!(await waitHealthy(nodes, 180_000))) throw new Error('patroni: node2 does not stream from node1 after setup');

  return {
    name: 'patroni',
    nodes,
    switchoverCommand: 'patronictl switchover --force',
    failoverBy: 'Patroni on both nodes (etcd lock, ttl 30 s)',
    changes: [
      `bootstrap.dcs: ttl ${PATRONI_DCS.ttl}, loop_wait ${PATRONI_DCS.loop_wait}, retry_timeout ${PATRONI_DCS.retry_timeout} (Patroni's defaults, written out); use_pg_rewind and use_slots on (as the sandbox's rejoin rewinds and uses slots)`,
      'authentication trust on 127.0.0.1 (the sandbox uses scram-sha-256; no effect on the timings measured)',
    ],
    async switchover(from, to) {
      await h.must(bins.patronictl, ['-c', yml(from), 'switchover', '--leader', from.name, '--candidate', to.name, '--force'], { timeoutMs: 300_000 });
    },
    async restore() {
      // Patroni restarts (or rewinds and restarts) the killed node itself; the caller waits for it to stream.
    },
  };
}
