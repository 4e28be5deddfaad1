/**
 * lastPrimaryPosition with a fake Temporal client: the newest completed readiness run that
 * recorded a primary position wins, unreadable results are skipped, and none is found:false.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import { createActivities } from '../../src/activities';
import { buildTopology } from '../support/topology';

const topology = () => buildTopology();

describe('lastPrimaryPosition', () => {
  const report = (lsn: string | null, node: string | null, at: string) => ({
    primaryLsn: lsn,
    primaryNode: node,
    primarySite: node === 'p' ? 'dc1' : 'dc2',
    observedAt: at,
  });

  function fakeTemporal(runs: { id: string; closed: string; result: unknown }[]) {
    const queries: string[] = [];
    const fetched: string[] = [];
    const client = {
      workflow: {
        list(o: { query: string }) {
          queries.push(o.query);
          return (async function* () {
            for (const r of runs) yield { workflowId: r.id, runId: `${r.id}-run`, closeTime: new Date(r.closed) };
          })();
        },
        getHandle(id: string) {
          return {
            result: async () => {
              fetched.push(id);
              const r = runs.find((x) => x.id === id)?.result;
              if (r instanceof Error) throw r;
              return r;
            },
          };
        },
      },
    };
    return { temporal: () => client as unknown as Client, queries, fetched };
  }

  it('without a Temporal client it is a ConfigError', async () => {
    const act = createActivities({ topology });
    await assert.rejects(act.lastPrimaryPosition({ cluster: 'main' }), { type: 'ConfigError' });
  });

  it('takes the newest completed run (by close time) that recorded a primary position', async () => {
    const t = fakeTemporal([
      { id: 'r-old', closed: '2026-01-01T10:00:00Z', result: report('0/100', 'p', '2026-01-01T09:59:00Z') },
      { id: 'r-newest-no-primary', closed: '2026-01-01T12:00:00Z', result: report(null, null, '2026-01-01T11:59:00Z') },
      { id: 'r-broken', closed: '2026-01-01T11:30:00Z', result: new Error('history gone') },
      { id: 'r-mid', closed: '2026-01-01T11:00:00Z', result: report('0/200', 'p', '2026-01-01T10:59:00Z') },
    ]);
    const act = createActivities({ topology, temporal: t.temporal });
    const r = await act.lastPrimaryPosition({ cluster: 'main' });
    assert.deepEqual(
      { ...r, detail: undefined },
      { found: true, lsn: '0/200', node: 'p', site: 'dc1', observedAt: '2026-01-01T10:59:00Z', workflowId: 'r-mid', detail: undefined },
    );
    assert.deepEqual(t.queries, ['SwitchyardCluster = "main" AND SwitchyardOperation = "readiness" AND ExecutionStatus = "Completed"']);
    assert.deepEqual(t.fetched, ['r-newest-no-primary', 'r-broken', 'r-mid']);
  });

  it('found:false when there is no run, or none recorded a position; unknown cluster is a ConfigError', async () => {
    const none = await createActivities({ topology, temporal: fakeTemporal([]).temporal }).lastPrimaryPosition({ cluster: 'main' });
    assert.equal(none.found, false);
    assert.match(none.detail, /no completed readiness run of cluster "main"/);
    const empty = await createActivities({
      topology,
      temporal: fakeTemporal([{ id: 'r', closed: '2026-01-01T00:00:00Z', result: report(null, null, 'x') }]).temporal,
    }).lastPrimaryPosition({ cluster: 'main' });
    assert.deepEqual([empty.found, empty.lsn, empty.workflowId], [false, null, null]);
    assert.match(empty.detail, /none of the 1 newest completed readiness runs/);
    await assert.rejects(createActivities({ topology, temporal: fakeTemporal([]).temporal }).lastPrimaryPosition({ cluster: 'nope' }), { type: 'ConfigError' });
  });
});
