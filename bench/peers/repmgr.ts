/**
 * A repmgr 5 pair on 127.0.0.1: two PostgreSQL 15 nodes (Debian layout as in the sandbox: each
 * node's postgresql.conf and pg_hba.conf in its own config dir, pg_ctl -D <config dir>), node1
 * primary, node2 cloned by `repmgr standby clone`, repmgrd on both with failover=automatic, and
 * a real sshd per node for repmgr's SSH to the other node (its own host key, pinned in a
 * known_hosts file with StrictHostKeyChecking=yes, key auth only).
 *
 * Both "hosts" share one filesystem and OS user here, and repmgr runs its remote commands with
 * its own -f path (`repmgr -f <local config> node …` over SSH). So each node's authorized_keys
 * entry has a forced command that swaps the other node's config path for its own and runs the
 * rest unchanged: the SSH is real, the commands are repmgr's own.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Peer } from './peer';
import { confLines, freePorts, PG_BIN, seed, sleep, startSshd, waitHealthy, type PeerHost, type PeerNode } from './procs';

interface RepmgrNode extends PeerNode {
  id: number;
  confDir: string;
  conf: string;
  log: string;
  ssh: number;
}

export async function repmgrPair(h: PeerHost, tuning: Record<string, string>, bins: { repmgr: string; repmgrd: string }): Promise<Peer> {
  const [pg1, pg2, ssh1, ssh2] = await freePorts(4);
  const base = h.dir('repmgr');
  const key = join(h.dir('repmgr', 'client'), 'id_ed25519');
  await h.must('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-peers-repmgr', '-f', key]);
  const knownHosts = join(base, 'client', 'known_hosts');

  const nodes: RepmgrNode[] = [1, 2].map((id) => {
    const port = id === 1 ? pg1 : pg2;
    const confDir = h.dir('repmgr', `node${id}`, 'conf');
    return {
      id,
      name: `node${id}`,
      host: '127.0.0.1',
      port,
      conn: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
      dataDir: join(base, `node${id}`, 'data'),
      confDir,
      conf: join(confDir, 'repmgr.conf'),
      log: join(base, `node${id}`, 'postgres.log'),
      ssh: id === 1 ? ssh1 : ssh2,
    };
  });
  const other = (n: RepmgrNode) => nodes.find((x) => x !== n)!;
  const sshOptionsTo = (n: RepmgrNode) =>
    `-q -o BatchMode=yes -o ConnectTimeout=5 -o IdentitiesOnly=yes -i ${key} -p ${n.ssh} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes`;
  const pgCtl = (n: RepmgrNode, ...args: string[]) => `${PG_BIN}/pg_ctl -D ${n.confDir} ${args.join(' ')}`;

  for (const n of nodes) {
    const run = h.dir('repmgr', n.name, 'run');
    h.write(
      join(n.confDir, 'postgresql.conf'),
      `# bench/peers repmgr ${n.name}: the sandbox's settings (sandbox/postgres.ts postgresqlConf), plus repmgrd's library
data_directory = '${n.dataDir}'
hba_file = '${join(n.confDir, 'pg_hba.conf')}'
ident_file = '${join(n.confDir, 'pg_ident.conf')}'
listen_addresses = '127.0.0.1'
port = ${n.port}
unix_socket_directories = '${run}'
cluster_name = 'repmgr-${n.name}'
${confLines(tuning)}
shared_preload_libraries = 'repmgr'
`,
    );
    h.write(
      join(n.confDir, 'pg_hba.conf'),
      `local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n`,
      0o640,
    );
    h.write(join(n.confDir, 'pg_ident.conf'), '', 0o640);
    // node1's repmgr only ever reaches node2 over SSH and the other way round: the port is the other node's sshd.
    const sshOptions = sshOptionsTo(other(n));
    h.write(
      n.conf,
      `# bench/peers: repmgr ${n.name}; every timeout at repmgr's default
node_id=${n.id}
node_name='${n.name}'
conninfo='host=127.0.0.1 port=${n.port} user=repmgr dbname=repmgr connect_timeout=2'
data_directory='${n.dataDir}'
config_directory='${n.confDir}'
pg_bindir='${PG_BIN}'
use_replication_slots=true
ssh_options='${sshOptions}'
failover=automatic
promote_command='${bins.repmgr} standby promote -f ${n.conf} --log-to-file'
follow_command='${bins.repmgr} standby follow -f ${n.conf} --log-to-file --upstream-node-id=%n'
log_file='${join(base, n.name, 'repmgr.log')}'
repmgrd_pid_file='${join(base, n.name, 'repmgrd.pid')}'
# No systemd here, and the config lives outside the data directory: pg_ctl -D <config dir>.
service_start_command='${pgCtl(n, '-l', n.log, '-w', '-t', '60', 'start')}'
service_stop_command='${pgCtl(n, '-m', 'fast', '-w', 'stop')}'
service_restart_command='${pgCtl(n, '-l', n.log, '-m', 'fast', '-w', 'restart')}'
service_reload_command='${pgCtl(n, 'reload')}'
`,
    );
    // The forced command: repmgr on the other node names its own config file; this node runs it with its own.
    h.write(
      join(base, n.name, 'ssh-command.sh'),
      `#!/bin/sh\n# bench/peers: run the command repmgr sent with this node's config path in place of the sender's\ncmd=$(printf '%s' "$SSH_ORIGINAL_COMMAND" | sed 's#${other(n).conf}#${n.conf}#g')\nexec /bin/sh -c "$cmd"\n`,
      0o755,
    );
  }

  // Node1: initdb, started, the repmgr role and database, the writer's table, registered.
  const [n1, n2] = nodes;
  await h.must(`${PG_BIN}/initdb`, [
    '-D',
    n1.dataDir,
    '--data-checksums',
    '-U',
    'postgres',
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--locale=C.UTF-8',
    '--no-sync',
    '--no-instructions',
  ]);
  // As in the sandbox: the data directory's own postgresql.conf is a stub (cloned and rewound along with the data).
  h.write(join(n1.dataDir, 'postgresql.conf'), '# bench/peers: settings in the node config dir (pg_ctl -D <config dir>)\n', 0o600);
  await h.must(`${PG_BIN}/pg_ctl`, ['-D', n1.confDir, '-l', n1.log, '-w', '-t', '60', 'start']);
  await h.must(`${PG_BIN}/psql`, [
    '-h',
    '127.0.0.1',
    '-p',
    String(n1.port),
    '-U',
    'postgres',
    '-d',
    'postgres',
    '-v',
    'ON_ERROR_STOP=1',
    '-c',
    'CREATE ROLE repmgr SUPERUSER LOGIN',
    '-c',
    'CREATE DATABASE repmgr OWNER repmgr',
  ]);
  await seed(n1.conn);
  await h.must(bins.repmgr, ['-f', n1.conf, 'primary', 'register']);

  // Node2: cloned and registered.
  await h.must(
    bins.repmgr,
    ['-h', '127.0.0.1', '-p', String(n1.port), '-U', 'repmgr', '-d', 'repmgr', '-f', n2.conf, 'standby', 'clone', '--fast-checkpoint'],
    { timeoutMs: 300_000 },
  );
  await h.must(`${PG_BIN}/pg_ctl`, ['-D', n2.confDir, '-l', n2.log, '-w', '-t', '60', 'start']);
  await h.must(bins.repmgr, ['-f', n2.conf, 'standby', 'register']);

  // The sshds, each pinned in known_hosts, each accepting the client key with its forced command.
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  const hostKeys: string[] = [];
  for (const n of nodes) {
    const s = await startSshd(
      h,
      `repmgr-${n.name}`,
      n.ssh,
      `command="${join(base, n.name, 'ssh-command.sh')}",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding ${pub}\n`,
    );
    hostKeys.push(`[127.0.0.1]:${s.port} ${s.hostKeyPub}`);
  }
  h.write(knownHosts, `${hostKeys.join('\n')}\n`, 0o644);
  // SSH works both ways before anything relies on it.
  for (const n of nodes) await h.must('/usr/bin/ssh', [...sshOptionsTo(other(n)).split(' '), '127.0.0.1', 'true']);

  const startRepmgrd = (n: RepmgrNode) => h.spawn(`repmgrd-${n.name}`, bins.repmgrd, ['-f', n.conf, '--daemonize=false']);
  for (const n of nodes) await startRepmgrd(n);
  if (!(await waitHealthy(nodes, 60_000))) throw new Error('repmgr: node2 does not stream from node1 after setup');
  // repmgrd registers itself as running; give it its first monitoring cycle before the first switchover.
  await sleep(2000);

  const byName = (n: PeerNode) => nodes.find((x) => x.name === n.name)!;
  return {
    name: 'repmgr',
    nodes,
    switchoverCommand: 'repmgr standby switchover --siblings-follow (on the standby)',
    failoverBy: 'repmgrd on both nodes, failover=automatic',
    changes: [
      "service_start/stop/restart/reload_command: pg_ctl -D <config dir>, since there is no systemd and each node keeps its postgresql.conf outside the data directory (the sandbox's layout)",
      "shared_preload_libraries = 'repmgr' (repmgrd needs it)",
      'authentication trust on 127.0.0.1 (the sandbox uses scram-sha-256; no effect on the timings measured)',
      'timeouts: none changed (reconnect_attempts 6 × reconnect_interval 10 s before repmgrd promotes; shutdown_check_timeout 60 s)',
    ],
    async switchover(_from, to) {
      await h.must(bins.repmgr, ['-f', byName(to).conf, 'standby', 'switchover', '--siblings-follow'], { timeoutMs: 300_000 });
    },
    async restore(old, primary) {
      // The killed node did not shut down cleanly (no node rejoin without a clean shutdown): cloned afresh from the new primary, registered again, its repmgrd restarted.
      const o = byName(old);
      await h.stopSpawned(`repmgrd-${o.name}`);
      await h.run(`${PG_BIN}/pg_ctl`, ['-D', o.confDir, '-m', 'immediate', '-w', 'stop']);
      await h.must(
        bins.repmgr,
        ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'repmgr', '-d', 'repmgr', '-f', o.conf, 'standby', 'clone', '--force', '--fast-checkpoint'],
        {
          timeoutMs: 300_000,
        },
      );
      await h.must(`${PG_BIN}/pg_ctl`, ['-D', o.confDir, '-l', o.log, '-w', '-t', '60', 'start']);
      await h.must(bins.repmgr, ['-f', o.conf, 'standby', 'register', '--force']);
      await startRepmgrd(o);
      await sleep(2000);
    },
  };
}
