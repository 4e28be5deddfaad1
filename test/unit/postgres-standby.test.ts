/**
 * The rejoin and switchover activities (postgres/: slots, rewind, basebackup, standby-config,
 * replication-waits, write-probe) with fakes. Each fake SSH host is a directory of this machine:
 * the activities' file scripts (sh -c with paths as arguments) really run there,
 * with every absolute path argument moved under that host's directory, so quoting, base64 both
 * ways, modes and atomic renames are exercised for real. PostgreSQL tools (pg_ctl, pg_controldata,
 * pg_rewind, pg_basebackup) are played by a simulated node, and the pg client by a fake.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import type pg from 'pg';
import { ed25519KeyPair } from '../support/ssh-keys';
import { WRITE_SH } from '../../src/activities/ssh/files';
import { createActivities, type PgClientLike } from '../../src/activities';
import { commandLine } from '../../src/activities/ssh/quote';
import { configFileEntries, confQuote, conninfo, conninfoValue, rewriteAutoConf } from '../../src/activities/postgres/standby-config';
import { moveAsideName } from '../../src/activities/postgres/data-dir';
import { parseRewindOutput } from '../../src/activities/postgres/rewind';
import { outputTail } from '../../src/activities/postgres/shared';
import { topologySchema, type Topology } from '../../src/topology/schema';
import { fakeSsh } from '../support/fake-ssh';
import { buildTopology } from '../support/topology';

const clientKey = ed25519KeyPair();
const hostKey = ed25519KeyPair();
const PG_PASSWORD = 'sekrit-pg-password';

function topology(): Topology {
  return buildTopology({
    hosts: {
      h1: { site: 'dc1', address: '127.0.7.1', hostKey: hostKey.public },
      h2: { site: 'dc2', address: '127.0.7.2', hostKey: hostKey.public },
    },
    postgres: {
      user: 'switchyard',
      password: { env: 'PGPW' },
      replication: { user: 'rep' },
      passfile: '/etc/pg pass/.pgpass',
      nodes: {
        p: {
          site: 'dc1',
          sshHost: 'h1',
          host: '10.0.0.1',
          dataDir: '/data/p',
          configDir: '/etc/pg/p',
          binDir: '/pg/bin',
          slot: 'p_slot',
          configFiles: ['/etc/app/shared.conf'],
        },
        s: {
          site: 'dc2',
          sshHost: 'h2',
          host: '10.0.0.2',
          port: 5433,
          dataDir: '/data/s',
          binDir: '/pg/bin',
          slot: 's_slot',
          configFiles: ['/etc/app/shared.conf', { from: '/srv/on-primary.conf', to: '/srv/here.conf' }, { from: '/srv/big.bin', to: '/srv/big.bin' }],
        },
      },
    },
  });
}

/** pg_controldata output as PostgreSQL 15 prints it (abridged). */
function controlText(state: string, checkpoint: string, tli = 1): string {
  return `Database system identifier:           7710897567256517587
Database cluster state:               ${state}
Latest checkpoint location:           ${checkpoint}
Latest checkpoint's REDO location:    ${checkpoint}
Latest checkpoint's TimeLineID:       ${tli}
Minimum recovery ending location:     0/0
`;
}

/** pg_rewind's output in the C locale, as PostgreSQL 15 printed it in the sandbox. */
const REWIND_DIVERGED = `pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/3023428 on timeline 1
pg_rewind: rewinding from last common checkpoint at 0/30233B0 on timeline 1
pg_rewind: reading source file list
pg_rewind: reading target file list
pg_rewind: reading WAL in target
pg_rewind: need to copy 51 MB (total source directory size is 70 MB)
    0/52960 kB (0%) copied
26480/52960 kB (50%) copied
52960/52960 kB (100%) copied
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!
`;
const REWIND_NOT_NEEDED = `pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/3023428 on timeline 1
pg_rewind: no rewind required
`;
/** What PostgreSQL 15's pg_rewind says when the promoted source has not checkpointed yet. */
const REWIND_SAME_TIMELINE = `pg_rewind: source and target cluster are on the same timeline
pg_rewind: no rewind required
`;

// ---------------------------------------------------------------------------------------------
// The fake world

/** Split a command line made by ssh/quote.ts back into its arguments. */
function unquote(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inArg = false;
  for (let i = 0; i < line.length;) {
    const ch = line[i];
    if (ch === "'") {
      const j = line.indexOf("'", i + 1);
      cur += line.slice(i + 1, j);
      i = j + 1;
      inArg = true;
    } else if (ch === '\\') {
      cur += line[i + 1];
      i += 2;
      inArg = true;
    } else if (ch === ' ') {
      if (inArg) out.push(cur);
      cur = '';
      inArg = false;
      i++;
    } else {
      cur += ch;
      i++;
      inArg = true;
    }
  }
  if (inArg) out.push(cur);
  return out;
}

type Reply = { code: number | null; stdout?: string; stderr?: string };

/** A node as its host's PostgreSQL tools and its port see it. */
class SimNode {
  running: boolean;
  inRecovery = false;
  state = 'shut down';
  checkpoint = '0/303F818';
  timeline = 1;
  rewind: Reply = { code: 0, stderr: REWIND_DIVERGED };
  basebackupWorks = true;
  /** What the node's databases take (pg_database_size summed); null: the login may not read it. */
  databaseBytes: number | null = 30 * 1024 * 1024;
  /** The control file timeline of a source right after promotion (null: same as wal timeline). */
  checkpointTli: number | null = null;
  walTli = 1;
  checkpointRefused = false;
  replay = '0/5000000';
  current = '0/5000000';
  receiver: { status: string; sender_host: string; sender_port: number } | null = null;
  slots = new Map<string, string>();
  acceptsWrites = true;
  constructor(o: { running: boolean }) {
    this.running = o.running;
  }
}

interface World {
  act: ReturnType<typeof createActivities>;
  roots: Record<string, string>;
  commands: { host: string; argv: string[]; line: string }[];
  queries: { host: string; sql: string; values?: unknown[] }[];
  /** A path on a fake host, as this machine sees it. */
  at(host: 'h1' | 'h2', path: string): string;
}

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function world(nodes: { p: SimNode; s: SimNode }, opts: { now?: () => Date; unreachable?: string[] } = {}): World {
  const root = mkdtempSync(join(tmpdir(), 'switchyard-test-standby-'));
  roots.push(root);
  const hostRoots: Record<string, string> = { '127.0.7.1': join(root, 'h1'), '127.0.7.2': join(root, 'h2') };
  for (const r of Object.values(hostRoots)) mkdirSync(r);
  const simOf: Record<string, { sim: SimNode; dataDir: string }> = {
    '127.0.7.1': { sim: nodes.p, dataDir: '/data/p' },
    '127.0.7.2': { sim: nodes.s, dataDir: '/data/s' },
  };
  const w: World = {
    act: undefined as never,
    roots: { h1: hostRoots['127.0.7.1'], h2: hostRoots['127.0.7.2'] },
    commands: [],
    queries: [],
    at: (host, path) => join(host === 'h1' ? hostRoots['127.0.7.1'] : hostRoots['127.0.7.2'], path),
  };

  const runLocal = (hostRoot: string, argv: string[], prefixFrom: number): Reply => {
    // A write's second argument is base64 content, which may start with '/' like a path: never rerooted.
    const content = argv[2] === WRITE_SH ? 5 : -1;
    const args = argv.map((a, i) => (i >= prefixFrom && i !== content && a.startsWith('/') ? hostRoot + a : a));
    const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
    const strip = (s: string) => s.split(hostRoot).join('');
    return { code: r.status, stdout: strip(r.stdout ?? ''), stderr: strip(r.stderr ?? '') };
  };

  const pgTool = (address: string, argv: string[]): Reply => {
    const { sim, dataDir } = simOf[address];
    const local = hostRoots[address] + dataDir;
    const tool = argv[0].split('/').pop();
    if (tool === 'pg_ctl' && argv[1] === 'status') {
      if (sim.running) return { code: 0, stdout: 'pg_ctl: server is running (PID: 4242)\n' };
      return existsSync(local) ? { code: 3, stdout: 'pg_ctl: no server running\n' } : { code: 4, stderr: `pg_ctl: directory "${dataDir}" does not exist\n` };
    }
    if (tool === 'pg_controldata') return { code: 0, stdout: controlText(sim.state, sim.checkpoint, sim.timeline) };
    if (tool === 'pg_rewind') return sim.rewind;
    if (tool === 'pg_basebackup') {
      if (!sim.basebackupWorks)
        return { code: 1, stderr: 'pg_basebackup: error: connection to server failed: FATAL:  no pg_hba.conf entry\npg_basebackup: removing data directory\n' };
      if (existsSync(local)) return { code: 1, stderr: `pg_basebackup: error: directory "${dataDir}" exists but is not empty\n` };
      mkdirSync(local, { recursive: true, mode: 0o700 });
      chmodSync(local, 0o700);
      writeFileSync(join(local, 'PG_VERSION'), '15\n');
      writeFileSync(join(local, 'postgresql.auto.conf'), "primary_conninfo = 'host=stale'\n", { mode: 0o600 });
      return { code: 0, stderr: '0/30000 kB (0%), 0/1 tablespace\n30000/30000 kB (100%), 1/1 tablespace\n' };
    }
    return { code: 127, stderr: `sim: unknown tool ${argv.join(' ')}` };
  };

  const { ssh } = fakeSsh({
    presents: hostKey.public,
    unreachable: opts.unreachable,
    run: (line, { host, opts: o }) => {
      const hostName = host === '127.0.7.1' ? 'h1' : 'h2';
      let argv = unquote(line);
      assert.equal(commandLine(argv), line, 'the fake reads back exactly what ssh/quote.ts quoted');
      w.commands.push({ host: hostName, argv, line });
      if (argv[0] === 'env' && argv[1] === 'LC_ALL=C') argv = argv.slice(2);
      o.onData?.();
      return argv[0].startsWith('/pg/bin/') ? pgTool(host, argv) : argv[0] === 'sh' ? runLocal(hostRoots[host], argv, 4) : runLocal(hostRoots[host], argv, 1);
    },
  });

  const pgClient = (cfg: pg.ClientConfig): PgClientLike => {
    const address = String(cfg.host) === '10.0.0.1' ? '127.0.7.1' : '127.0.7.2';
    const host = address === '127.0.7.1' ? 'p' : 's';
    const sim = simOf[address].sim;
    return {
      async connect() {
        if (!sim.running) throw Object.assign(new Error(`connect ECONNREFUSED ${cfg.host}:${cfg.port}`), { code: 'ECONNREFUSED' });
      },
      async query(sql: string, values?: unknown[]) {
        w.queries.push({ host, sql, values });
        if (!sim.running) throw new Error('Connection terminated unexpectedly');
        if (/pg_create_physical_replication_slot/.test(sql)) {
          sim.slots.set(String(values?.[0]), '0/5000000');
          return { rows: [{}] };
        }
        if (/FROM pg_replication_slots WHERE slot_name/.test(sql)) {
          const r = sim.slots.get(String(values?.[0]));
          return { rows: r ? [{ slot_type: 'physical', restart_lsn: r }] : [] };
        }
        if (/checkpoint_tli/.test(sql))
          return { rows: [{ rec: sim.inRecovery, checkpoint_tli: sim.checkpointTli ?? sim.walTli, wal_tli: sim.inRecovery ? null : sim.walTli }] };
        if (/^CHECKPOINT$/.test(sql)) {
          if (sim.checkpointRefused) throw Object.assign(new Error('permission denied to execute CHECKPOINT'), { code: '42501' });
          sim.checkpointTli = null;
          return { rows: [] };
        }
        if (/pg_reload_conf/.test(sql)) return { rows: [{ pg_reload_conf: true }] };
        if (/sum\(pg_database_size\(oid\)\)/.test(sql)) {
          if (sim.databaseBytes === null) throw Object.assign(new Error('permission denied for function pg_database_size'), { code: '42501' });
          return { rows: [{ bytes: String(sim.databaseBytes) }] };
        }
        if (/pg_stat_wal_receiver/.test(sql))
          return { rows: [{ rec: sim.inRecovery, replay: sim.replay, ...(sim.receiver ?? { status: null, sender_host: null, sender_port: null }) }] };
        if (/pg_last_wal_replay_lsn/.test(sql)) return { rows: [{ rec: sim.inRecovery, replay: sim.replay }] };
        if (/current_setting\('default_transaction_read_only'\)/.test(sql)) return { rows: [{ rec: sim.inRecovery || !sim.acceptsWrites, ro: 'off' }] };
        if (/pg_current_wal_lsn/.test(sql)) return { rows: [{ rec: sim.inRecovery, lsn: sim.inRecovery ? null : sim.current }] };
        if (/^SELECT pg_is_in_recovery\(\) AS rec$/.test(sql)) return { rows: [{ rec: sim.inRecovery }] };
        if (/^(BEGIN|COMMIT|ROLLBACK|SET LOCAL|CREATE|INSERT)/.test(sql.trim())) return { rows: [] };
        throw new Error(`fake pg: unexpected query ${sql.slice(0, 80)}`);
      },
      async end() {},
    };
  };

  w.act = createActivities({
    topology,
    secret: async (ref) => (ref.env === 'PGPW' ? PG_PASSWORD : clientKey.private),
    ssh,
    pgClient,
    now: opts.now,
    timeouts: { verifyMs: 300 },
  });
  return w;
}

function put(path: string, content: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
}

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

// ---------------------------------------------------------------------------------------------

describe('conninfo and postgresql.conf quoting', () => {
  it('leaves plain values bare and quotes the rest the way libpq reads them', () => {
    assert.equal(conninfoValue('127.0.0.1'), '127.0.0.1');
    assert.equal(conninfoValue('/etc/pg pass/.pgpass'), "'/etc/pg pass/.pgpass'");
    assert.equal(conninfoValue("it's\\here"), "'it\\'s\\\\here'");
    assert.equal(conninfoValue(''), "''");
    assert.equal(
      conninfo([
        ['host', 'a'],
        ['port', 5432],
        ['passfile', undefined],
        ['application_name', 'dc1-db'],
      ]),
      'host=a port=5432 application_name=dc1-db',
    );
  });

  it('quotes a postgresql.conf string as ALTER SYSTEM does (quotes and backslashes doubled)', () => {
    assert.equal(confQuote("host=a passfile='/x y'"), "'host=a passfile=''/x y'''");
    assert.equal(confQuote('a\\b'), "'a\\\\b'");
  });
});

describe('postgresql.auto.conf rewrite', () => {
  const settings: [string, string][] = [
    ['primary_conninfo', 'host=b port=5432'],
    ['primary_slot_name', 'dc1_db'],
    ['recovery_target_timeline', 'latest'],
  ];

  it('keeps every other line, drops every earlier line for the keys, appends the settings', () => {
    const before = [
      '# Do not edit this file manually!',
      '# It will be overwritten by the ALTER SYSTEM command.',
      "work_mem = '64MB'",
      "primary_conninfo = 'host=a port=5432 user=replicator'",
      "  PRIMARY_SLOT_NAME='old'",
      "recovery_target_timeline 'current'",
      "primary_conninfo_extra_not_ours = 'x'",
      "shared_preload_libraries = 'pg_stat_statements'",
      '',
    ].join('\n');
    assert.equal(
      rewriteAutoConf(before, settings),
      [
        '# Do not edit this file manually!',
        '# It will be overwritten by the ALTER SYSTEM command.',
        "work_mem = '64MB'",
        "primary_conninfo_extra_not_ours = 'x'",
        "shared_preload_libraries = 'pg_stat_statements'",
        "primary_conninfo = 'host=b port=5432'",
        "primary_slot_name = 'dc1_db'",
        "recovery_target_timeline = 'latest'",
        '',
      ].join('\n'),
    );
  });

  it("is idempotent, and gives a new file ALTER SYSTEM's header", () => {
    const once = rewriteAutoConf("work_mem = '64MB'", settings);
    assert.equal(rewriteAutoConf(once, settings), once);
    const fresh = rewriteAutoConf('', settings);
    assert.match(fresh, /^# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\nprimary_conninfo = /);
    assert.equal(rewriteAutoConf(fresh, settings), fresh);
  });
});

describe('pg_rewind output', () => {
  it('reads the fork point, "no rewind required" and "same timeline"', () => {
    assert.deepEqual(parseRewindOutput(REWIND_DIVERGED), {
      divergedAtLsn: '0/3023428',
      divergedTimeline: 1,
      noRewindNeeded: false,
      sameTimeline: false,
      crashRecovery: false,
    });
    assert.deepEqual(parseRewindOutput(REWIND_NOT_NEEDED), {
      divergedAtLsn: '0/3023428',
      divergedTimeline: 1,
      noRewindNeeded: true,
      sameTimeline: false,
      crashRecovery: false,
    });
    assert.deepEqual(parseRewindOutput(REWIND_SAME_TIMELINE), {
      divergedAtLsn: null,
      divergedTimeline: null,
      noRewindNeeded: true,
      sameTimeline: true,
      crashRecovery: false,
    });
    assert.equal(
      parseRewindOutput('pg_rewind: executing "/usr/lib/postgresql/15/bin/postgres" for target server to complete crash recovery\n').crashRecovery,
      true,
    );
  });

  it("keeps the output's tail with only the last progress line", () => {
    const t = outputTail(REWIND_DIVERGED);
    assert.doesNotMatch(t, /\(0%\)|\(50%\)/);
    assert.match(t, /52960\/52960 kB \(100%\) copied\npg_rewind: creating backup label/);
    assert.equal(outputTail('a\nb\nc\nd', 2), 'c\nd');
  });
});

describe('moving a data directory aside', () => {
  it('names it <dataDir>.switchyard-<UTC yyyymmddThhmmssZ>', () => {
    assert.equal(moveAsideName('/var/lib/postgresql/15/main', new Date('2026-11-22T08:12:54.193Z')), '/var/lib/postgresql/15/main.switchyard-20261122T081254Z');
    assert.equal(moveAsideName('/data/p/', new Date('2027-01-02T03:04:05Z')), '/data/p.switchyard-20270102T030405Z');
  });
});

describe('pgRewind', () => {
  it('refuses a running target non-retryably (WrongRole) and runs nothing else', async () => {
    const w = world({ p: new SimNode({ running: true }), s: new SimNode({ running: true }) });
    mkdirSync(w.at('h1', '/data/p'), { recursive: true });
    await assert.rejects(
      w.act.pgRewind({ cluster: 'main', node: 'p', source: 's' }),
      (e: Error & { type?: string; nonRetryable?: boolean }) => e.type === 'WrongRole' && e.nonRetryable === true && /stop it first/.test(e.message),
    );
    assert.ok(!w.commands.some((c) => /pg_rewind/.test(c.line)));
  });

  it('rewinds a stopped target: the fork point, the WAL thrown away, a forced checkpoint on a freshly promoted source', async () => {
    const p = new SimNode({ running: false });
    const s = new SimNode({ running: true });
    s.walTli = 2;
    s.checkpointTli = 1;
    const w = world({ p, s });
    mkdirSync(w.at('h1', '/data/p'), { recursive: true });
    const r = await w.act.pgRewind({ cluster: 'main', node: 'p', source: 's' });
    assert.deepEqual(
      [r.ok, r.noRewindNeeded, r.divergedAtLsn, r.divergedTimeline, r.targetEndLsn, r.divergedBytes],
      [true, false, '0/3023428', 1, '0/303F818', 0x303f818 - 0x3023428],
    );
    assert.match(r.detail, /forced a CHECKPOINT on s/);
    assert.ok(w.queries.some((q) => q.host === 's' && q.sql === 'CHECKPOINT'));
    const rewind = w.commands.find((c) => /pg_rewind/.test(c.line));
    assert.deepEqual(rewind?.argv, [
      'env',
      'LC_ALL=C',
      '/pg/bin/pg_rewind',
      '--target-pgdata=/data/p',
      "--source-server=host=10.0.0.2 port=5433 user=switchyard dbname=postgres passfile='/etc/pg pass/.pgpass' " +
        'connect_timeout=10 application_name=switchyard-pg_rewind',
      '--progress',
    ]);
    assert.ok(!w.commands.some((c) => c.line.includes(PG_PASSWORD)), 'no password in any command');
  });

  it('"no rewind required" is ok with nothing discarded; a control file not "shut down" is said', async () => {
    const p = new SimNode({ running: false });
    p.state = 'in production';
    p.rewind = { code: 0, stderr: REWIND_NOT_NEEDED };
    const w = world({ p, s: new SimNode({ running: true }) });
    mkdirSync(w.at('h1', '/data/p'), { recursive: true });
    const r = await w.act.pgRewind({ cluster: 'main', node: 'p', source: 's' });
    assert.deepEqual([r.ok, r.noRewindNeeded, r.divergedBytes], [true, true, 0]);
    // The fake's control file stays "in production" after the dry run's crash recovery: said, as a lower bound.
    assert.match(r.detail, /had not shut down cleanly \("in production"\) and crash recovery did not settle it.*lower bound/);
    assert.ok(
      w.commands.some((c) => c.argv.some((a) => a.endsWith('pg_rewind')) && c.argv.includes('--dry-run')),
      'crash recovery through pg_rewind --dry-run ran first',
    );
  });

  it('"same timeline" while the timelines differ (the source could not be checkpointed) is not trusted (ok:false)', async () => {
    const p = new SimNode({ running: false });
    p.rewind = { code: 0, stderr: REWIND_SAME_TIMELINE };
    const s = new SimNode({ running: true });
    s.walTli = 2;
    s.checkpointTli = 1;
    s.checkpointRefused = true;
    const w = world({ p, s });
    mkdirSync(w.at('h1', '/data/p'), { recursive: true });
    const r = await w.act.pgRewind({ cluster: 'main', node: 'p', source: 's' });
    assert.deepEqual([r.ok, r.noRewindNeeded, r.divergedBytes], [false, false, null]);
    assert.match(r.detail, /reported the same timeline, but p is on timeline 1 and s on 2: not trusted/);
    assert.match(r.detail, /could not CHECKPOINT s after its promotion to timeline 2 \(permission denied/);
  });

  it('a failing pg_rewind is ok:false with its output; no data directory is ok:false without running it', async () => {
    const p = new SimNode({ running: false });
    p.rewind = { code: 1, stderr: 'pg_rewind: error: could not connect to server: connection refused\n' };
    const w = world({ p, s: new SimNode({ running: true }) });
    mkdirSync(w.at('h1', '/data/p'), { recursive: true });
    const r = await w.act.pgRewind({ cluster: 'main', node: 'p', source: 's' });
    assert.equal(r.ok, false);
    assert.match(r.output, /could not connect to server/);
    assert.match(r.detail, /failed \(exited 1: .*\): take a base backup instead/);

    const none = world({ p: new SimNode({ running: false }), s: new SimNode({ running: true }) });
    const n = await none.act.pgRewind({ cluster: 'main', node: 'p', source: 's' });
    assert.equal(n.ok, false);
    assert.match(n.detail, /has no data directory at \/data\/p/);
    assert.ok(!none.commands.some((c) => /pg_rewind/.test(c.line)));
  });

  it('an unreachable host throws retryably (the workflow retries); a node as its own source is a ConfigError', async () => {
    const w = world({ p: new SimNode({ running: false }), s: new SimNode({ running: true }) }, { unreachable: ['127.0.7.1'] });
    const e = await w.act.pgRewind({ cluster: 'main', node: 'p', source: 's' }).then(
      () => assert.fail('expected a rejection'),
      (err: Error & { nonRetryable?: boolean }) => err,
    );
    assert.match(e.message, /cannot connect to h1/);
    assert.notEqual(e.nonRetryable, true);
    await assert.rejects(w.act.pgRewind({ cluster: 'main', node: 'p', source: 'p' }), { type: 'ConfigError' });
  });
});

describe('pgBasebackup', () => {
  it('moves the old directory aside (kept), a retry in the same second gets its own name, both are listed', async () => {
    const p = new SimNode({ running: false });
    const now = () => new Date('2026-11-22T08:12:54.193Z');
    const w = world({ p, s: new SimNode({ running: true }) }, { now });
    put(w.at('h1', '/data/p/PG_VERSION'), '15\n', 0o600);
    put(w.at('h1', '/data/p/base/1'), 'old data');
    const b = await w.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' });
    assert.deepEqual(b.movedAside, ['/data/p.switchyard-20261122T081254Z']);
    assert.equal(readFileSync(w.at('h1', '/data/p.switchyard-20261122T081254Z/base/1'), 'utf8'), 'old data');
    assert.ok(existsSync(w.at('h1', '/data/p/PG_VERSION')));
    assert.equal(modeOf(w.at('h1', '/data/p')), '700');
    assert.match(b.detail, /[\d.]+ \w+ free on \/\S+, 30\.0 MiB needed/, 'the free space was checked first');
    const bb = w.commands.find((c) => /pg_basebackup/.test(c.line));
    assert.deepEqual(bb?.argv, [
      'env',
      'LC_ALL=C',
      '/pg/bin/pg_basebackup',
      '-D',
      '/data/p',
      '-X',
      'fetch',
      '--checkpoint=fast',
      '--progress',
      '--no-password',
      '-d',
      "host=10.0.0.2 port=5433 user=rep passfile='/etc/pg pass/.pgpass' connect_timeout=10 application_name=switchyard-pg_basebackup",
    ]);

    // A retry (the first attempt's copy counts as half-made): moved aside too, under its own name.
    const again = await w.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' });
    assert.deepEqual(again.movedAside, ['/data/p.switchyard-20261122T081254Z', '/data/p.switchyard-20261122T081254Z.2']);
    assert.deepEqual(readdirSync(w.roots.h1 + '/data').sort(), ['p', 'p.switchyard-20261122T081254Z', 'p.switchyard-20261122T081254Z.2']);
  });

  it("refuses (InsufficientSpace) before moving anything when the source's databases and a reserve do not fit; an unreadable size is said", async () => {
    const s = new SimNode({ running: true });
    s.databaseBytes = 2 ** 60; // 1 EiB: more than any disk here
    const w = world({ p: new SimNode({ running: false }), s });
    put(w.at('h1', '/data/p/PG_VERSION'), '15\n', 0o600);
    const e = await w.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' }).then(
      () => assert.fail('expected a refusal'),
      (err: Error & { type?: string; nonRetryable?: boolean }) => err,
    );
    assert.equal(e.type, 'InsufficientSpace');
    assert.equal(e.nonRetryable, true);
    assert.match(
      e.message,
      /^not enough free space on h1 to copy s into \/data\/p: it needs [\d.]+ PiB \(1024\.00 PiB of databases \+ a reserve of [\d.]+ PiB\), /,
    );
    assert.match(e.message, /\), the filesystem of \/\S+ has [\d.]+ \w+ free/);
    assert.match(e.message, /Nothing was moved or copied/);
    assert.deepEqual(readdirSync(w.roots.h1 + '/data'), ['p'], 'the data directory is where it was');
    assert.equal(w.commands.filter((c) => /pg_basebackup|switchyard-/.test(c.line)).length, 0, 'nothing moved aside, no pg_basebackup');

    s.databaseBytes = null;
    const b = await w.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' });
    assert.match(b.detail, /free space not checked: the size of s's databases could not be read \(permission denied for function pg_database_size\)/);
  });

  it('no data directory: nothing to move; refuses a running node (WrongRole); a failing copy throws retryably with its output', async () => {
    const fresh = world({ p: new SimNode({ running: false }), s: new SimNode({ running: true }) });
    mkdirSync(fresh.at('h1', '/data'), { recursive: true });
    const b = await fresh.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' });
    assert.deepEqual(b.movedAside, []);

    const running = world({ p: new SimNode({ running: true }), s: new SimNode({ running: true }) });
    put(running.at('h1', '/data/p/PG_VERSION'), '15\n');
    await assert.rejects(running.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' }), { type: 'WrongRole', nonRetryable: true });
    assert.ok(existsSync(running.at('h1', '/data/p/PG_VERSION')), 'nothing was moved');

    const p = new SimNode({ running: false });
    p.basebackupWorks = false;
    const failing = world({ p, s: new SimNode({ running: true }) });
    mkdirSync(failing.at('h1', '/data'), { recursive: true });
    const e = await failing.act.pgBasebackup({ cluster: 'main', node: 'p', source: 's' }).then(
      () => assert.fail('expected a rejection'),
      (err: Error & { nonRetryable?: boolean }) => err,
    );
    assert.match(e.message, /pg_basebackup of p .* from s exited 1:\n.*no pg_hba.conf entry/);
    assert.notEqual(e.nonRetryable, true);
  });
});

describe('pgConfigureStandby', () => {
  it('writes standby.signal and the settings (other lines kept, mode kept), once; reloads a running node', async () => {
    const s = new SimNode({ running: false });
    const w = world({ p: new SimNode({ running: true }), s });
    put(w.at('h2', '/data/s/PG_VERSION'), '15\n', 0o600);
    const auto = w.at('h2', '/data/s/postgresql.auto.conf');
    put(auto, "# Do not edit this file manually!\nwork_mem = '64MB'\nprimary_conninfo = 'host=stale'\n", 0o600);

    const c = await w.act.pgConfigureStandby({ cluster: 'main', node: 's', primary: 'p' });
    assert.equal(c.changed, true, c.detail);
    assert.equal(
      readFileSync(auto, 'utf8'),
      [
        '# Do not edit this file manually!',
        "work_mem = '64MB'",
        "primary_conninfo = 'host=10.0.0.1 port=5432 user=rep passfile=''/etc/pg pass/.pgpass'' application_name=s connect_timeout=5'",
        "primary_slot_name = 's_slot'",
        "recovery_target_timeline = 'latest'",
        '',
      ].join('\n'),
    );
    assert.equal(modeOf(auto), '600');
    assert.ok(existsSync(w.at('h2', '/data/s/standby.signal')));
    assert.ok(!existsSync(`${auto}.switchyard-tmp`));
    assert.match(c.detail, /it is stopped: the settings apply when it starts/);
    assert.ok(!w.queries.some((q) => /pg_reload_conf/.test(q.sql)));
    assert.ok(!w.commands.some((c2) => c2.line.includes(PG_PASSWORD)));

    s.running = true;
    s.inRecovery = true;
    const again = await w.act.pgConfigureStandby({ cluster: 'main', node: 's', primary: 'p' });
    assert.equal(again.changed, false, again.detail);
    assert.ok(w.queries.some((q) => q.host === 's' && /pg_reload_conf/.test(q.sql)));
    assert.match(again.detail, /runs as a standby: configuration reloaded/);
  });

  it('a data directory without postgresql.auto.conf gets one with the header; none at all is refused', async () => {
    const w = world({ p: new SimNode({ running: true }), s: new SimNode({ running: false }) });
    put(w.at('h2', '/data/s/PG_VERSION'), '15\n');
    await w.act.pgConfigureStandby({ cluster: 'main', node: 's', primary: 'p' });
    assert.match(readFileSync(w.at('h2', '/data/s/postgresql.auto.conf'), 'utf8'), /^# Do not edit this file manually!\n/);
    assert.equal(modeOf(w.at('h2', '/data/s/postgresql.auto.conf')), '600');

    const none = world({ p: new SimNode({ running: true }), s: new SimNode({ running: false }) });
    await assert.rejects(none.act.pgConfigureStandby({ cluster: 'main', node: 's', primary: 'p' }), { type: 'NoDataDirectory', nonRetryable: true });
  });
});

describe('copyConfigFiles', () => {
  it("reads a node's configFiles in both forms", () => {
    const t = topology();
    assert.deepEqual(configFileEntries(t.clusters.main.postgres.nodes.s), [
      { from: '/etc/app/shared.conf', to: '/etc/app/shared.conf' },
      { from: '/srv/on-primary.conf', to: '/srv/here.conf' },
      { from: '/srv/big.bin', to: '/srv/big.bin' },
    ]);
    assert.throws(
      () =>
        topologySchema.parse({
          ...structuredClone(t),
          clusters: {
            main: {
              ...t.clusters.main,
              postgres: {
                ...t.clusters.main.postgres,
                nodes: { ...t.clusters.main.postgres.nodes, s: { ...t.clusters.main.postgres.nodes.s, configFiles: [{ from: '/a', to: 'relative' }] } },
              },
            },
          },
        }),
      /absolute path/,
    );
  });

  it("copies both forms from the primary's host: content and hash, target mode kept (0600 when new); a second copy changes nothing", async () => {
    const w = world({ p: new SimNode({ running: true }), s: new SimNode({ running: false }) });
    const big = randomBytes(150 * 1024 + 17); // several chunks each way
    put(w.at('h1', '/etc/app/shared.conf'), 'shared = "primary\'s"\n', 0o644);
    put(w.at('h1', '/srv/on-primary.conf'), 'token = s3cret-in-a-config-file\n', 0o600);
    put(w.at('h1', '/srv/big.bin'), big, 0o640);
    put(w.at('h2', '/srv/here.conf'), 'old\n', 0o640);

    const r = await w.act.copyConfigFiles({ cluster: 'main', node: 's', from: 'p' });
    assert.deepEqual(
      r.files.map((f) => [f.source, f.target, f.bytes, f.changed]),
      [
        ['/etc/app/shared.conf', '/etc/app/shared.conf', 21, true],
        ['/srv/on-primary.conf', '/srv/here.conf', 32, true],
        ['/srv/big.bin', '/srv/big.bin', big.length, true],
      ],
    );
    assert.equal(readFileSync(w.at('h2', '/etc/app/shared.conf'), 'utf8'), 'shared = "primary\'s"\n');
    assert.equal(readFileSync(w.at('h2', '/srv/here.conf'), 'utf8'), 'token = s3cret-in-a-config-file\n');
    assert.ok(readFileSync(w.at('h2', '/srv/big.bin')).equals(big));
    assert.equal(modeOf(w.at('h2', '/etc/app/shared.conf')), '600', 'a new file is 0600');
    assert.equal(modeOf(w.at('h2', '/srv/here.conf')), '640', 'an existing target keeps its mode');
    assert.match(r.files[2].sha256, /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(r).includes('s3cret'), 'the result carries hashes, not content');
    assert.ok(!existsSync(w.at('h2', '/srv/here.conf.switchyard-tmp')));
    assert.ok(
      w.commands.every((c) => c.line.length < 100 * 1024),
      'every command line stays well inside ARG_MAX',
    );
    assert.ok(!w.commands.some((c) => c.host === 'h1' && /base64 -d/.test(c.line)), "the primary's host is only read");

    const again = await w.act.copyConfigFiles({ cluster: 'main', node: 's', from: 'p' });
    assert.deepEqual(
      again.files.map((f) => f.changed),
      [false, false, false],
    );
    assert.deepEqual(
      again.files.map((f) => f.sha256),
      r.files.map((f) => f.sha256),
    );
  });

  it("a source file missing on the primary's host is a ConfigError, and nothing is written", async () => {
    const w = world({ p: new SimNode({ running: true }), s: new SimNode({ running: false }) });
    put(w.at('h1', '/etc/app/shared.conf'), 'x\n');
    await assert.rejects(
      w.act.copyConfigFiles({ cluster: 'main', node: 's', from: 'p' }),
      (e: Error & { type?: string }) => e.type === 'ConfigError' && /\/srv\/on-primary\.conf .* does not exist on h1/.test(e.message),
    );
    assert.ok(!existsSync(w.at('h2', '/etc/app/shared.conf')));
  });
});

describe('pgEnsureSlot', () => {
  it('creates the slot once; refuses a node in recovery (WrongRole)', async () => {
    const p = new SimNode({ running: true });
    const w = world({ p, s: new SimNode({ running: true }) });
    const a = await w.act.pgEnsureSlot({ cluster: 'main', primary: 'p', slot: 's_slot' });
    assert.deepEqual([a.created, a.slot], [true, 's_slot']);
    const b = await w.act.pgEnsureSlot({ cluster: 'main', primary: 'p', slot: 's_slot' });
    assert.equal(b.created, false);
    assert.equal(w.queries.filter((q) => /pg_create_physical_replication_slot/.test(q.sql)).length, 1);
    p.inRecovery = true;
    await assert.rejects(w.act.pgEnsureSlot({ cluster: 'main', primary: 'p', slot: 'other' }), { type: 'WrongRole', nonRetryable: true });
    await assert.rejects(w.act.pgEnsureSlot({ cluster: 'main', primary: 'p', slot: 'Bad-Name' }), { type: 'ConfigError' });
  });
});

describe('pgWaitReplay and pgWaitStreaming', () => {
  it('pgWaitReplay: reached once replay passes the LSN; reached:false at the timeout', async () => {
    const s = new SimNode({ running: true });
    s.inRecovery = true;
    s.replay = '0/4FFFFFF';
    const w = world({ p: new SimNode({ running: true }), s });
    setTimeout(() => (s.replay = '0/5000010'), 400);
    const r = await w.act.pgWaitReplay({ cluster: 'main', node: 's', lsn: '0/5000000', timeoutSeconds: 10 });
    assert.deepEqual([r.reached, r.replayLsn], [true, '0/5000010']);
    assert.ok(r.waitedMs >= 300);
    const t = await w.act.pgWaitReplay({ cluster: 'main', node: 's', lsn: '1/0', timeoutSeconds: 1 });
    assert.deepEqual([t.reached, t.replayLsn], [false, '0/5000010']);
    assert.match(t.detail, /not within 1 s/);
    await assert.rejects(w.act.pgWaitReplay({ cluster: 'main', node: 's', lsn: 'nonsense', timeoutSeconds: 1 }), { type: 'ConfigError' });
  });

  it("pgWaitStreaming: streaming from the primary's host:port within the lag; otherwise what it saw and the log", async () => {
    const p = new SimNode({ running: true });
    p.current = '0/5000100';
    const s = new SimNode({ running: true });
    s.inRecovery = true;
    s.replay = '0/5000000';
    const w = world({ p, s });
    const none = await w.act.pgWaitStreaming({ cluster: 'main', node: 's', primary: 'p', maxLagBytes: 1024, timeoutSeconds: 1 });
    assert.equal(none.streaming, false);
    assert.match(none.detail, /no WAL receiver runs/);
    assert.match(none.detail, /\/data\/s\/switchyard-pg\.log on h2: tail exited 1/);

    put(w.at('h2', '/data/s/switchyard-pg.log'), 'FATAL:  could not connect to the primary server\n');
    const logged = await w.act.pgWaitStreaming({ cluster: 'main', node: 's', primary: 'p', maxLagBytes: 1024, timeoutSeconds: 1 });
    assert.match(logged.detail, /last lines of \/data\/s\/switchyard-pg\.log on h2 ---\nFATAL:  could not connect to the primary server/);

    s.receiver = { status: 'streaming', sender_host: '10.0.0.1', sender_port: 5432 };
    const ok = await w.act.pgWaitStreaming({ cluster: 'main', node: 's', primary: 'p', maxLagBytes: 1024, timeoutSeconds: 5 });
    assert.deepEqual([ok.streaming, ok.lagBytes], [true, 256], ok.detail);
    const behind = await w.act.pgWaitStreaming({ cluster: 'main', node: 's', primary: 'p', maxLagBytes: 100, timeoutSeconds: 1 });
    assert.deepEqual([behind.streaming, behind.lagBytes], [false, 256]);
    assert.match(behind.detail, /lag 256 bytes \(max 100\)/);
    assert.doesNotMatch(behind.detail, /last lines/, 'the receiver streamed: no log needed');
  });
});

describe('writeProbeLoop', () => {
  it('measures from the first refused write to the first one taken by expectNode', async () => {
    const p = new SimNode({ running: true });
    const s = new SimNode({ running: true });
    s.inRecovery = true;
    const w = world({ p, s });
    setTimeout(() => (p.running = false), 250);
    setTimeout(() => (s.inRecovery = false), 600);
    const m = await w.act.writeProbeLoop({ cluster: 'main', expectNode: 's', maxSeconds: 10, intervalMs: 20 });
    assert.equal(m.acceptedOn, 's', m.detail);
    assert.ok(m.refused > 0 && m.probes > m.refused, m.detail);
    assert.ok(m.downtimeMs !== null && m.downtimeMs >= 200 && m.downtimeMs < 2000, m.detail);
    assert.ok(m.firstRefusedAt! < m.firstAcceptedAfterRefusalAt!);
    assert.ok(!JSON.stringify(m).includes(PG_PASSWORD));
  });

  it('never refused: ends after maxSeconds with downtimeMs null', async () => {
    const w = world({ p: new SimNode({ running: true }), s: new SimNode({ running: true }) });
    const m = await w.act.writeProbeLoop({ cluster: 'main', expectNode: 's', maxSeconds: 1, intervalMs: 50 });
    assert.deepEqual([m.refused, m.downtimeMs, m.firstRefusedAt, m.acceptedOn], [0, null, null, 'p']);
    assert.match(m.detail, /no write was refused/);
    await assert.rejects(w.act.writeProbeLoop({ cluster: 'main', expectNode: 'x', maxSeconds: 1 }), { type: 'ConfigError' });
  });

  it('started after the switch (a retry once the worker was lost): ends at once, downtime not measured', async () => {
    const p = new SimNode({ running: false });
    const s = new SimNode({ running: true });
    const t0 = Date.now();
    const m = await world({ p, s }).act.writeProbeLoop({ cluster: 'main', expectNode: 's', maxSeconds: 60, intervalMs: 50 });
    assert.ok(Date.now() - t0 < 5_000, `it did not wait for maxSeconds (${Date.now() - t0} ms)`);
    assert.deepEqual([m.refused, m.downtimeMs, m.acceptedOn], [0, null, 's']);
    assert.match(m.detail, /s already took writes when the probes began/);
  });
});
