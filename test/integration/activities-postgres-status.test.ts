/**
 * The PostgreSQL activities against a real primary and a streaming standby (initdb and
 * pg_basebackup as the postgres OS user, on 127.0.90.1 and 127.0.90.2), torn down in `after`.
 */
import { loadTools } from '../../src/tools';
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createActivities, type Activities } from '../../src/activities';
import { Daemon, freePort, giveToRunAs, rejection, removeDir, run, tempDir, topology, waitFor } from './activities-harness';

const PRIMARY_ADDR = '127.0.90.1';
const STANDBY_ADDR = '127.0.90.2';
const PASSWORD = 'pw-Xq7-not-a-word';

let dir: string | undefined;
const daemons: Daemon[] = [];
let act: Activities;
let primaryPort: number;
let standbyPort: number;
let deadPort: number;

function sql(host: string, port: number) {
  return new pg.Client({ host, port, user: 'postgres', password: PASSWORD, database: 'postgres', connectionTimeoutMillis: 3000 });
}

async function query<T extends Record<string, unknown>>(host: string, port: number, text: string): Promise<T[]> {
  const c = sql(host, port);
  await c.connect();
  try {
    return (await c.query(text)).rows as T[];
  } finally {
    await c.end();
  }
}

function startPostgres(name: string, dataDir: string, address: string, port: number): Daemon {
  const d = Daemon.start(
    name,
    join(loadTools().pgBinDir, 'postgres'),
    ['-D', dataDir, '-c', `listen_addresses=${address}`, '-c', `port=${port}`, '-c', `unix_socket_directories=${dir}`],
    {
      asRunAs: true,
    },
  );
  daemons.push(d);
  return d;
}

before(async () => {
  dir = tempDir('pg');
  const bin = loadTools().pgBinDir;
  primaryPort = await freePort(PRIMARY_ADDR);
  standbyPort = await freePort(STANDBY_ADDR);
  deadPort = await freePort(PRIMARY_ADDR);
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  giveToRunAs(pwfile);
  const primaryDir = join(dir, 'primary');
  const standbyDir = join(dir, 'standby');
  await run(join(bin, 'initdb'), ['-D', primaryDir, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'], {
    asRunAs: true,
  });
  appendFileSync(join(primaryDir, 'pg_hba.conf'), 'host all all 127.0.0.0/8 scram-sha-256\nhost replication all 127.0.0.0/8 scram-sha-256\n');
  const primary = startPostgres('primary', primaryDir, PRIMARY_ADDR, primaryPort);
  await waitFor('the primary to accept connections', async () => (await query(PRIMARY_ADDR, primaryPort, 'SELECT 1')).length === 1 || undefined).catch(
    (err) => {
      throw new Error(`${err}\n${primary.output}`);
    },
  );
  await query(PRIMARY_ADDR, primaryPort, `SELECT pg_create_physical_replication_slot('standby_slot')`);
  await run(
    join(bin, 'pg_basebackup'),
    ['-h', PRIMARY_ADDR, '-p', String(primaryPort), '-U', 'postgres', '-D', standbyDir, '-R', '-S', 'standby_slot', '-X', 'stream', '--no-sync'],
    {
      asRunAs: true,
      env: { PGPASSWORD: PASSWORD },
    },
  );
  const standby = startPostgres('standby', standbyDir, STANDBY_ADDR, standbyPort);
  await waitFor('the standby to stream', async () => {
    const rows = await query<{ status: string }>(STANDBY_ADDR, standbyPort, 'SELECT status FROM pg_stat_wal_receiver');
    return rows[0]?.status === 'streaming' || undefined;
  }).catch((err) => {
    throw new Error(`${err}\n${standby.output}`);
  });

  const secretFile = join(dir, 'pg-password');
  writeFileSync(secretFile, `${PASSWORD}\n`);
  const wrongFile = join(dir, 'wrong-password');
  writeFileSync(wrongFile, 'definitely-wrong\n');
  const cluster = (password: string, ports: [number, number]) => ({
    preferredPrimary: 'dc1',
    sites: { dc1: {}, dc2: {} },
    hosts: {
      'dc1-db': { site: 'dc1', address: PRIMARY_ADDR, hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl' },
      'dc2-db': { site: 'dc2', address: STANDBY_ADDR, hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl' },
    },
    ssh: { user: 'postgres', privateKey: { file: '/nonexistent/key' } },
    postgres: {
      user: 'postgres',
      password: { file: password },
      replication: { user: 'postgres' },
      nodes: {
        db1: { site: 'dc1', sshHost: 'dc1-db', host: PRIMARY_ADDR, port: ports[0], dataDir: primaryDir, binDir: bin, slot: 'db1_slot' },
        db2: { site: 'dc2', sshHost: 'dc2-db', host: STANDBY_ADDR, port: ports[1], dataDir: standbyDir, binDir: bin, slot: 'standby_slot' },
      },
    },
  });
  const top = topology({
    version: 1,
    clusters: {
      main: cluster(secretFile, [primaryPort, standbyPort]),
      wrongpw: cluster(wrongFile, [primaryPort, standbyPort]),
      dead: cluster(secretFile, [deadPort, deadPort]),
    },
  });
  act = createActivities({ topology: () => top, timeouts: { pgConnectMs: 2000 } });
});

after(async () => {
  for (const d of daemons.reverse()) await d.stop('SIGINT');
  removeDir(dir);
});

describe('pgStatus', () => {
  it('sees the primary: role, timeline, position, the streaming replica and its active slot', async () => {
    // A standby that has just connected has sent no replay position yet (pg_stat_replication.replay_lsn
    // is NULL until its first feedback message): look again until it has.
    let s = await act.pgStatus({ cluster: 'main', node: 'db1' });
    for (let i = 0; i < 100 && typeof s.replicas?.[0]?.replayLagBytes !== 'number'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await act.pgStatus({ cluster: 'main', node: 'db1' });
    }
    assert.equal(s.reachable, true, s.error);
    assert.equal(s.inRecovery, false);
    assert.equal(s.site, 'dc1');
    assert.equal(s.timeline, 1);
    assert.match(s.currentLsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.match(s.serverVersion ?? '', /^15\./);
    assert.equal(s.replicas?.length, 1);
    assert.equal(s.replicas?.[0].state, 'streaming');
    // The kernel picks the source address on loopback (127.0.0.1), not the standby's listen address.
    assert.match(s.replicas?.[0].clientAddr ?? '', /^127\.\d+\.\d+\.\d+$/);
    assert.equal(typeof s.replicas?.[0].replayLagBytes, 'number');
    assert.deepEqual(
      s.slots?.map((x) => [x.name, x.active]),
      [['standby_slot', true]],
    );
  });

  it('sees the standby: in recovery, same system, streaming from the primary through its slot', async () => {
    const [p, s] = await Promise.all([act.pgStatus({ cluster: 'main', node: 'db1' }), act.pgStatus({ cluster: 'main', node: 'db2' })]);
    assert.equal(s.reachable, true, s.error);
    assert.equal(s.inRecovery, true);
    assert.equal(s.systemIdentifier, p.systemIdentifier);
    assert.equal(s.timeline, 1);
    assert.equal(s.currentLsn, undefined);
    assert.match(s.receiveLsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.match(s.replayLsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.deepEqual(s.walReceiver, { status: 'streaming', senderHost: PRIMARY_ADDR, senderPort: primaryPort, slotName: 'standby_slot' });
    assert.deepEqual(s.replicas, []);
  });

  it('reports an unreachable node as data, without throwing', async () => {
    const s = await act.pgStatus({ cluster: 'dead', node: 'db1' });
    assert.equal(s.reachable, false);
    assert.match(s.error ?? '', /ECONNREFUSED/);
  });

  it('reports a refused login as data and never shows the password', async () => {
    const s = await act.pgStatus({ cluster: 'wrongpw', node: 'db1' });
    assert.equal(s.reachable, false);
    assert.match(s.error ?? '', /password authentication failed/);
    assert.ok(!JSON.stringify(s).includes('definitely-wrong'));
  });

  it('refuses unknown names with a ConfigError listing what exists', async () => {
    const e = await rejection(act.pgStatus({ cluster: 'main', node: 'db9' }));
    assert.equal(e.type, 'ConfigError');
    assert.equal(e.nonRetryable, true);
    assert.match(e.message, /unknown database node "db9" in cluster "main"; known: "db1", "db2"/);
    const e2 = await rejection(act.pgStatus({ cluster: 'nope', node: 'db1' }));
    assert.match(e2.message, /unknown cluster "nope"; known: "main", "wrongpw", "dead"/);
  });
});

describe('pgWriteProbe', () => {
  it('writes a heartbeat row on the primary that then reaches the standby', async () => {
    const r = await act.pgWriteProbe({ cluster: 'main', node: 'db1' });
    assert.equal(r.ok, true, r.detail);
    assert.match(r.lsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    const rows = await query<{ node: string; by: string }>(PRIMARY_ADDR, primaryPort, 'SELECT node, by FROM switchyard.heartbeat');
    assert.deepEqual(rows, [{ node: 'db1', by: 'switchyard' }]);
    // The standby replays past the probe's LSN and holds the same row.
    await waitFor('the standby to replay the probe', async () => {
      const [x] = await query<{ ok: boolean }>(STANDBY_ADDR, standbyPort, `SELECT pg_last_wal_replay_lsn() >= '${r.lsn}'::pg_lsn AS ok`);
      return x.ok || undefined;
    });
    const onStandby = await query<{ node: string }>(STANDBY_ADDR, standbyPort, 'SELECT node FROM switchyard.heartbeat');
    assert.deepEqual(onStandby, [{ node: 'db1' }]);
  });

  it('a second probe updates the same row and moves the LSN forward', async () => {
    const [before] = await query<{ at: Date }>(PRIMARY_ADDR, primaryPort, `SELECT at FROM switchyard.heartbeat WHERE node = 'db1'`);
    await new Promise((r) => setTimeout(r, 20));
    const a = await act.pgWriteProbe({ cluster: 'main', node: 'db1' });
    const rows = await query<{ at: Date }>(PRIMARY_ADDR, primaryPort, `SELECT at FROM switchyard.heartbeat WHERE node = 'db1'`);
    assert.equal(rows.length, 1);
    assert.ok(rows[0].at.getTime() > before.at.getTime());
    assert.ok(a.ok);
  });

  it('refuses on the standby (ok:false) without throwing', async () => {
    const r = await act.pgWriteProbe({ cluster: 'main', node: 'db2' });
    assert.equal(r.ok, false);
    assert.match(r.detail, /in recovery/);
    assert.equal(r.lsn, undefined);
  });

  it('refuses a node with default_transaction_read_only', async () => {
    await query(PRIMARY_ADDR, primaryPort, `ALTER SYSTEM SET default_transaction_read_only = on`);
    await query(PRIMARY_ADDR, primaryPort, `SELECT pg_reload_conf()`);
    try {
      const r = await waitFor('the setting to apply', async () => {
        const x = await act.pgWriteProbe({ cluster: 'main', node: 'db1' });
        return x.ok ? undefined : x;
      });
      assert.match(r.detail, /read_only/);
    } finally {
      const c = sql(PRIMARY_ADDR, primaryPort);
      await c.connect();
      await c.query('SET default_transaction_read_only = off');
      await c.query('ALTER SYSTEM RESET default_transaction_read_only');
      await c.query('SELECT pg_reload_conf()');
      await c.end();
    }
  });

  it('throws a retryable error when the node cannot be reached (an action, not a status read)', async () => {
    const e = await rejection(act.pgWriteProbe({ cluster: 'dead', node: 'db1' }));
    assert.notEqual(e.nonRetryable, true);
    assert.match(e.message, /write probe on db1 \(127\.0\.90\.1:\d+\) of cluster "dead" failed: .*ECONNREFUSED/);
  });

  it('a refused login is non-retryable and the message carries no password', async () => {
    const e = await rejection(act.pgWriteProbe({ cluster: 'wrongpw', node: 'db1' }));
    assert.equal(e.nonRetryable, true);
    assert.match(e.message, /password authentication failed/);
    assert.ok(!e.message.includes('definitely-wrong') && !e.message.includes(PASSWORD));
  });
});

describe('pgLag', () => {
  it('is zero bytes and zero seconds once the standby has replayed everything', async () => {
    await act.pgWriteProbe({ cluster: 'main', node: 'db1' });
    const lag = await waitFor('the standby to catch up', async () => {
      const l = await act.pgLag({ cluster: 'main', primary: 'db1', standby: 'db2' });
      return l.lagBytes === 0 ? l : undefined;
    });
    assert.equal(lag.lagSeconds, 0);
    assert.equal(lag.replayLsn, lag.primaryLsn);
    assert.equal(lag.receiveLsn, lag.replayLsn);
  });

  it('counts bytes and seconds while replay is paused and writes go on', async () => {
    await query(STANDBY_ADDR, standbyPort, 'SELECT pg_wal_replay_pause()');
    try {
      await waitFor(
        'replay to pause',
        async () => (await query<{ s: string }>(STANDBY_ADDR, standbyPort, 'SELECT pg_get_wal_replay_pause_state() AS s'))[0].s === 'paused' || undefined,
      );
      await new Promise((r) => setTimeout(r, 1100));
      await query(PRIMARY_ADDR, primaryPort, `CREATE TABLE IF NOT EXISTS lag_filler AS SELECT g FROM generate_series(1, 20000) g`);
      const primaryNow = (await query<{ lsn: string }>(PRIMARY_ADDR, primaryPort, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0].lsn;
      const lag = await waitFor('the standby to receive what it cannot replay', async () => {
        const l = await act.pgLag({ cluster: 'main', primary: 'db1', standby: 'db2' });
        return l.receiveLsn !== l.replayLsn ? l : undefined;
      });
      assert.ok((lag.lagBytes ?? 0) > 100_000, `lag ${lag.lagBytes} bytes`);
      // Bytes between the primary's position (read at least as late as primaryNow) and replay.
      const [{ d }] = await query<{ d: string }>(PRIMARY_ADDR, primaryPort, `SELECT pg_wal_lsn_diff('${primaryNow}', '${lag.replayLsn}')::text AS d`);
      assert.ok((lag.lagBytes ?? 0) >= Number(d));
      assert.ok(lag.lagSeconds !== null && lag.lagSeconds >= 1, `lag ${lag.lagSeconds} s`);
    } finally {
      await query(STANDBY_ADDR, standbyPort, 'SELECT pg_wal_replay_resume()');
    }
    const caughtUp = await waitFor('the standby to catch up again', async () => {
      const l = await act.pgLag({ cluster: 'main', primary: 'db1', standby: 'db2' });
      return l.lagBytes === 0 ? l : undefined;
    });
    assert.equal(caughtUp.lagSeconds, 0);
  });

  it('refuses swapped roles with a WrongRole failure', async () => {
    const e = await rejection(act.pgLag({ cluster: 'main', primary: 'db2', standby: 'db1' }));
    assert.equal(e.type, 'WrongRole');
    assert.match(e.message, /db2 .* is in recovery/);
  });

  it('throws a retryable error naming the node that cannot be reached', async () => {
    const e = await rejection(act.pgLag({ cluster: 'dead', primary: 'db1', standby: 'db2' }));
    assert.notEqual(e.nonRetryable, true);
    assert.match(e.message, /reading the primary position on db1/);
  });
});

describe('after promotion', () => {
  it('the promoted standby reports the new timeline at once and takes the write probe', async () => {
    await query(STANDBY_ADDR, standbyPort, 'SELECT pg_promote(true, 30)');
    const s = await act.pgStatus({ cluster: 'main', node: 'db2' });
    assert.equal(s.inRecovery, false);
    assert.equal(s.timeline, 2);
    const probe = await act.pgWriteProbe({ cluster: 'main', node: 'db2' });
    assert.equal(probe.ok, true, probe.detail);
    const rows = await query<{ node: string }>(STANDBY_ADDR, standbyPort, 'SELECT node FROM switchyard.heartbeat ORDER BY node');
    assert.deepEqual(
      rows.map((r) => r.node),
      ['db1', 'db2'],
    );
  });
});
