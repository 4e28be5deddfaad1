/**
 * The failover's checks fail closed (issue 11), on a real Temporal dev server with the released
 * failover workflow and scripted activities over the example topology (cluster "shop": eu1 the
 * primary, eu2 the standby): what is checked after an approval at old-primary-dead decides, and
 * an error, a refused login or a frozen server is "unknown", never "dead". Each run is asked again
 * with what was seen, and nothing is promoted until it is rejected.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import type { PgNodeStatus, SshCheck } from '../../src/contract/observations';
import { decide } from '../../src/client/runs';
import { loadTopology } from '../../src/topology/load';
import type { FailoverResult } from '../../src/workflows/failover';
import type { Progress } from '../../src/contract/messages';
import { startTestTemporal, workflowBundle } from '../support/temporal';

const topology = loadTopology(join(__dirname, '../../examples/switchyard.yaml'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type AfterApproval = 'throws' | 'refused-login' | 'frozen';

interface Script {
  /** What reading eu1-db says once old-primary-dead was approved. */
  afterApproval: AfterApproval;
  approved: boolean;
  promoted: number;
}

const scripts = new Map<string, Script>();

const standby: PgNodeStatus = {
  cluster: 'shop',
  node: 'eu2-db',
  site: 'eu2',
  reachable: true,
  inRecovery: true,
  timeline: 1,
  receiveLsn: '0/3000148',
  replayLsn: '0/3000148',
  walReceiver: null,
};

function fakes(env: TestWorkflowEnvironment) {
  const real = createActivities({ topology: () => topology, temporal: () => env.client });
  const of = (cluster: string) => {
    const s = scripts.get(cluster);
    if (!s) throw new Error(`no script for ${cluster}`);
    return s;
  };
  return {
    clusterLayout: real.clusterLayout,
    lockAcquire: real.lockAcquire,
    lockRelease: real.lockRelease,
    async notify(): Promise<void> {},
    async pgStatus(input: { cluster: string; node: string }): Promise<PgNodeStatus> {
      // The scripts are keyed by workflow-unique cluster names mapped onto "shop".
      const s = of(input.cluster);
      if (input.node === 'eu2-db') return standby;
      const down: PgNodeStatus = {
        cluster: 'shop',
        node: 'eu1-db',
        site: 'eu1',
        reachable: false,
        error: 'connect ECONNREFUSED 10.1.0.10:5432',
        unreachable: 'refused',
      };
      if (!s.approved) return down;
      if (s.afterApproval === 'throws') throw new Error('test: the status read failed (the worker lost its network for a moment)');
      if (s.afterApproval === 'refused-login') return { ...down, error: 'password authentication failed for user "switchyard"', unreachable: 'unknown' };
      return { ...down, error: 'timeout expired', unreachable: 'unknown' };
    },
    async sshCheck(input: { cluster: string; host: string }): Promise<SshCheck> {
      return { host: input.host, site: 'eu1', address: '10.1.0.10', port: 22, ok: false, outcome: 'unreachable', detail: 'connect ECONNREFUSED 10.1.0.10:22' };
    },
    async pgPromote(input: { cluster: string }): Promise<never> {
      of(input.cluster).promoted++;
      throw new Error('test: pg_promote must not be called');
    },
  };
}

describe('failover: checks that fail closed after an approval (real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-failover-${randomUUID()}`;

  before(async () => {
    env = await startTestTemporal();
    worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: fakes(env) });
    running = worker.run();
  });
  after(async () => {
    if (worker) {
      worker.shutdown();
      await running;
    }
    await env?.teardown();
  });

  async function waitingAt(id: string, checkpoint: string, nth: number): Promise<Progress> {
    const h = env.client.workflow.getHandle(id);
    for (let i = 0; i < 300; i++) {
      const p = await h.query<Progress>('progress');
      if (p.waitingFor === checkpoint && p.steps.filter((s) => s.name === `checkpoint:${checkpoint}`).length === nth) return p;
      await sleep(100);
    }
    throw new Error(`${id} never waited at ${checkpoint} (#${nth}): ${JSON.stringify((await h.query<Progress>('progress')).steps.map((s) => s.name))}`);
  }

  for (const [afterApproval, seen] of [
    ['throws', /the status read failed: .*lost its network/],
    ['refused-login', /password authentication failed.*UNKNOWN/],
    ['frozen', /timeout expired.*UNKNOWN/],
  ] as const) {
    it(`an approval followed by a status read that ${afterApproval === 'throws' ? 'errors' : afterApproval === 'frozen' ? 'times out on a frozen server' : 'is a refused login'}: asked again, nothing promoted`, async () => {
      // One run at a time on the example cluster "shop": each releases its lock when it ends.
      const script: Script = { afterApproval, approved: false, promoted: 0 };
      scripts.set('shop', script);
      const id = `failover-fail-closed-${afterApproval}-${randomUUID()}`;
      const h = await env.client.workflow.start('failover', { taskQueue, workflowId: id, args: [{ cluster: 'shop', requestedBy: 'alice' }] });
      const first = await waitingAt(id, 'old-primary-dead', 1);
      assert.match(first.steps.find((s) => s.name === 'checkpoint:old-primary-dead')?.detail ?? '', /could not be fenced and confirmed down/);
      script.approved = true;
      assert.equal((await decide(env.client, id, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' })).accepted, true);

      const again = await waitingAt(id, 'old-primary-dead', 2);
      const prompt = again.steps.filter((s) => s.name === 'checkpoint:old-primary-dead').at(-1)?.detail ?? '';
      assert.match(prompt, /After bob's approval eu1-db was checked again and its state is UNKNOWN/);
      assert.match(prompt, seen);
      assert.equal(
        again.steps.some((s) => s.name === 'promote'),
        false,
        'no promotion was asked for',
      );

      assert.equal((await decide(env.client, id, { checkpoint: 'old-primary-dead', decision: 'reject', by: 'bob', comment: 'cannot see it' })).accepted, true);
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'aborted');
      assert.match(r.abortedBecause ?? '', /old-primary-dead rejected by bob/);
      assert.deepEqual(
        r.checkpoints.map((c) => c.decision),
        ['approve', 'reject'],
      );
      assert.equal(script.promoted, 0, 'pg_promote was never called');
    });
  }
});
