/**
 * The PostgreSQL status activities (postgres/status.ts) with a fake pg client: the lag rules, how
 * errors are classified, secrets (default reader, never in results or errors) and the connection
 * settings.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import { createActivities, type PgClientLike } from '../../src/activities';
import { defaultSecret } from '../../src/activities/secrets';
import type { SecretRef, Topology } from '../../src/topology/schema';
import { buildTopology } from '../support/topology';

const PASSWORD = 'hunter2-very-secret';

function top(password: SecretRef = { env: 'PGPW' }): Topology {
  return buildTopology({
    postgres: {
      user: 'switchyard',
      database: 'ops',
      password,
      replication: { user: 'rep' },
      nodes: {
        p: { site: 'dc1', sshHost: 'h1', host: '10.0.0.1', port: 5432, dataDir: '/d', binDir: '/b', slot: 'p' },
        s: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', port: 5433, dataDir: '/d', binDir: '/b', slot: 's' },
      },
    },
  });
}

type Handler = (sql: string, values?: unknown[]) => Record<string, unknown>[];

/** A pg client per host, answering queries by the first regex that matches. */
function fakePg(byHost: Record<string, { connect?: () => void; answers: [RegExp, Handler][] }>, seen: pg.ClientConfig[] = []) {
  return (cfg: pg.ClientConfig): PgClientLike => {
    seen.push(cfg);
    const h = byHost[String(cfg.host)];
    return {
      async connect() {
        h.connect?.();
      },
      async query(sql: string, values?: unknown[]) {
        const a = h.answers.find(([re]) => re.test(sql));
        if (!a) throw new Error(`fake pg: unexpected query ${sql.slice(0, 60)}`);
        return { rows: a[1](sql, values) };
      },
      async end() {},
    };
  };
}

const secret = async () => PASSWORD;

describe('pgLag rules', () => {
  const standby = (receive: string | null, replay: string | null, delay: number | null): [RegExp, Handler][] => [
    [/pg_last_wal_receive_lsn/, () => [{ rec: true, receive_lsn: receive, replay_lsn: replay, delay }]],
  ];
  const primary = (lsn: string): [RegExp, Handler][] => [[/pg_current_wal_lsn/, () => [{ rec: false, lsn }]]];

  it('is 0 s when the standby has replayed all it received and that is all the primary has', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({ '10.0.0.1': { answers: primary('0/3000060') }, '10.0.0.2': { answers: standby('0/3000060', '0/3000060', 812.5) } }),
    });
    const l = await act.pgLag({ cluster: 'main', primary: 'p', standby: 's' });
    assert.deepEqual(l, { primary: 'p', standby: 's', primaryLsn: '0/3000060', receiveLsn: '0/3000060', replayLsn: '0/3000060', lagBytes: 0, lagSeconds: 0 });
  });

  it('reports the replay delay while the standby is behind the primary', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({ '10.0.0.1': { answers: primary('0/3000060') }, '10.0.0.2': { answers: standby('0/3000060', '0/3000000', 4.25) } }),
    });
    const l = await act.pgLag({ cluster: 'main', primary: 'p', standby: 's' });
    assert.deepEqual([l.lagBytes, l.lagSeconds], [0x60, 4.25]);
  });

  it('is not caught up when replay equals receive but the primary is further', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({ '10.0.0.1': { answers: primary('0/4000000') }, '10.0.0.2': { answers: standby('0/3000000', '0/3000000', 9) } }),
    });
    const l = await act.pgLag({ cluster: 'main', primary: 'p', standby: 's' });
    assert.deepEqual([l.lagBytes, l.lagSeconds], [0x1000000, 9]);
  });

  it('has no byte lag when the standby reports no position yet', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({ '10.0.0.1': { answers: primary('0/4000000') }, '10.0.0.2': { answers: standby(null, null, null) } }),
    });
    const l = await act.pgLag({ cluster: 'main', primary: 'p', standby: 's' });
    assert.deepEqual([l.lagBytes, l.lagSeconds], [null, null]);
  });

  it('refuses a "standby" that is not in recovery', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({
        '10.0.0.1': { answers: primary('0/1') },
        '10.0.0.2': { answers: [[/pg_last_wal_receive_lsn/, () => [{ rec: false, receive_lsn: null, replay_lsn: null, delay: null }]]] },
      }),
    });
    await assert.rejects(
      act.pgLag({ cluster: 'main', primary: 'p', standby: 's' }),
      (e: ApplicationFailure) => e.type === 'WrongRole' && /s \(10\.0\.0\.2:5433\) is not in recovery/.test(e.message),
    );
  });
});

describe('connections', () => {
  it("connect with the topology's user, database, password and timeouts", async () => {
    const seen: pg.ClientConfig[] = [];
    const act = createActivities({
      topology: () => top(),
      secret,
      timeouts: { pgConnectMs: 1234, pgStatementMs: 5678 },
      pgClient: fakePg(
        {
          '10.0.0.1': {
            connect: () => {
              throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5432'), { code: 'ECONNREFUSED' });
            },
            answers: [],
          },
        },
        seen,
      ),
    });
    const s = await act.pgStatus({ cluster: 'main', node: 'p' });
    assert.deepEqual([s.reachable, s.error], [false, 'connect ECONNREFUSED 10.0.0.1:5432']);
    assert.equal(seen.length, 1);
    const c = seen[0];
    assert.deepEqual(
      [c.host, c.port, c.user, c.database, c.password, c.connectionTimeoutMillis, c.statement_timeout],
      ['10.0.0.1', 5432, 'switchyard', 'ops', PASSWORD, 1234, 5678],
    );
    assert.ok(typeof c.query_timeout === 'number' && c.query_timeout > 5678);
  });

  it('a server that answers with an error is reachable, with the error as data', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({
        '10.0.0.1': {
          answers: [
            [
              /pg_is_in_recovery/,
              () => {
                throw Object.assign(new Error('permission denied for function pg_control_system'), { code: '42501' });
              },
            ],
          ],
        },
      }),
    });
    const s = await act.pgStatus({ cluster: 'main', node: 'p' });
    assert.deepEqual([s.reachable, s.error], [true, 'permission denied for function pg_control_system']);
  });

  it('scrubs a resolved secret from errors, keeping their type and retryability', async () => {
    const act = createActivities({
      topology: () => top(),
      secret,
      pgClient: fakePg({
        '10.0.0.1': {
          connect: () => {
            throw new Error(`weird driver message quoting ${PASSWORD}`);
          },
          answers: [],
        },
      }),
    });
    const e = await act.pgWriteProbe({ cluster: 'main', node: 'p' }).then(
      () => assert.fail('expected a rejection'),
      (err: Error) => err,
    );
    assert.ok(!e.message.includes(PASSWORD), e.message);
    assert.match(e.message, /quoting \*\*\*/);
    assert.ok(!(e instanceof ApplicationFailure && e.nonRetryable));
    const s = await act.pgStatus({ cluster: 'main', node: 'p' });
    assert.ok(!JSON.stringify(s).includes(PASSWORD));
  });
});

describe('secrets', () => {
  it('the default reader takes an environment variable or a file, without the trailing newline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-secret-'));
    try {
      writeFileSync(join(dir, 'pw'), 'from-file\n');
      process.env.SWITCHYARD_TEST_SECRET_ENV = 'from-env\n';
      assert.equal(await defaultSecret({ file: join(dir, 'pw') }), 'from-file');
      assert.equal(await defaultSecret({ env: 'SWITCHYARD_TEST_SECRET_ENV' }), 'from-env');
    } finally {
      delete process.env.SWITCHYARD_TEST_SECRET_ENV;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing secret is a ConfigError naming the reference', async () => {
    delete process.env.SWITCHYARD_TEST_NOPE;
    const act = createActivities({ topology: () => top({ env: 'SWITCHYARD_TEST_NOPE' }), pgClient: fakePg({}) });
    await assert.rejects(
      act.pgStatus({ cluster: 'main', node: 'p' }),
      (e: ApplicationFailure) => e.type === 'ConfigError' && e.nonRetryable && /\{ env: SWITCHYARD_TEST_NOPE \}/.test(e.message),
    );
    const act2 = createActivities({ topology: () => top({ file: '/nonexistent/switchyard/pw' }), pgClient: fakePg({}) });
    await assert.rejects(act2.pgStatus({ cluster: 'main', node: 'p' }), /secret \{ file: \/nonexistent\/switchyard\/pw \}: cannot read the file \(ENOENT\)/);
  });

  it("a custom reader's failure is reported by reference, never by its message", async () => {
    const act = createActivities({
      topology: () => top(),
      secret: async () => {
        throw new Error('vault said: the value is hunter2-very-secret');
      },
      pgClient: fakePg({}),
    });
    await assert.rejects(
      act.pgStatus({ cluster: 'main', node: 'p' }),
      (e: Error) => /secret \{ env: PGPW \} \(postgres\.password of cluster "main"\) could not be read/.test(e.message) && !e.message.includes('hunter2'),
    );
  });
});
