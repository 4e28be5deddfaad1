/**
 * ec2StopInstance with a fake EC2 API: which instance is stopped, that a second call changes
 * nothing, the forced stop of an instance hung in "stopping", and what no match means.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DescribeInstancesCommand, StopInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { createActivities } from '../../src/activities';
import type { Topology } from '../../src/topology/schema';
import { buildTopology } from '../support/topology';

/** Node p is found by its tag, node s has no EC2 selector. */
function topology(): Topology {
  return buildTopology({
    postgres: {
      nodes: {
        p: { site: 'dc1', sshHost: 'h1', host: '10.0.0.1', dataDir: '/d', binDir: '/b', slot: 'p', ec2: { tags: { 'switchyard:node': 'p' } } },
        s: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', dataDir: '/d', binDir: '/b', slot: 's' },
      },
    },
    ec2: { region: 'eu-west-1', endpoint: 'http://127.0.0.1:1' },
  });
}

describe('ec2StopInstance', () => {
  /** A fake EC2 API with one instance per entry (its tags) and a state machine for StopInstances. */
  function fakeEc2(instances: { id: string; node: string; state: string }[], opts: { hang?: boolean } = {}) {
    const calls: string[] = [];
    const client = {
      async send(cmd: unknown) {
        if (cmd instanceof DescribeInstancesCommand) {
          calls.push('DescribeInstances');
          const f = cmd.input.Filters?.find((x) => x.Name === 'tag:switchyard:node');
          const ids = cmd.input.InstanceIds;
          const hit = instances.filter((i) => (f ? f.Values?.includes(i.node) : true) && (ids ? ids.includes(i.id) : true));
          return { Reservations: hit.length ? [{ Instances: hit.map((i) => ({ InstanceId: i.id, State: { Name: i.state } })) }] : [] };
        }
        if (cmd instanceof StopInstancesCommand) {
          calls.push(`StopInstances ${cmd.input.InstanceIds?.join(',')}${cmd.input.Force ? ' Force' : ''}`);
          const i = instances.find((x) => x.id === cmd.input.InstanceIds?.[0]);
          const prev = i?.state;
          // A hung guest: a plain stop leaves it "stopping" until a forced stop.
          if (i) i.state = opts.hang && !cmd.input.Force ? 'stopping' : 'stopped';
          return { StoppingInstances: [{ InstanceId: i?.id, PreviousState: { Name: prev }, CurrentState: { Name: 'stopping' } }] };
        }
        throw new Error('fake ec2: unexpected command');
      },
      destroy() {},
    };
    return { ec2: () => client as unknown as EC2Client, calls };
  }

  it('stops the node\'s running instance and reports "stopped"; a second call changes nothing', async () => {
    const f = fakeEc2([
      { id: 'i-0aaa', node: 'p', state: 'running' },
      { id: 'i-0bbb', node: 's', state: 'running' },
    ]);
    const act = createActivities({ topology, ec2: f.ec2 });
    const r = await act.ec2StopInstance({ cluster: 'main', node: 'p' });
    assert.deepEqual(r, {
      node: 'p',
      instanceId: 'i-0aaa',
      stateBefore: 'running',
      stateAfter: 'stopped',
      changed: true,
      detail: 'stopped i-0aaa (was running)',
    });
    assert.ok(f.calls.includes('StopInstances i-0aaa'));
    const again = await act.ec2StopInstance({ cluster: 'main', node: 'p' });
    assert.deepEqual([again.changed, again.stateBefore, again.stateAfter], [false, 'stopped', 'stopped']);
    assert.equal(f.calls.filter((c) => c.startsWith('StopInstances')).length, 1);
  });

  it('an instance hung in "stopping" gets a forced stop after forceAfterSeconds, and says so', async () => {
    const f = fakeEc2([{ id: 'i-0aaa', node: 'p', state: 'running' }], { hang: true });
    const act = createActivities({ topology, ec2: f.ec2 });
    const r = await act.ec2StopInstance({ cluster: 'main', node: 'p', forceAfterSeconds: 1 });
    assert.equal(r.stateAfter, 'stopped');
    assert.equal(r.forced, true);
    assert.match(r.detail, /forced stop/);
    assert.deepEqual(
      f.calls.filter((c) => c.startsWith('StopInstances')),
      ['StopInstances i-0aaa', 'StopInstances i-0aaa Force'],
    );
  });

  it('no instance found is a non-retryable failure with a clear message; no selector is a ConfigError', async () => {
    const act = createActivities({ topology, ec2: fakeEc2([]).ec2 });
    await assert.rejects(act.ec2StopInstance({ cluster: 'main', node: 'p' }), (e: Error & { type?: string; nonRetryable?: boolean }) => {
      assert.equal(e.type, 'Ec2InstanceNotFound');
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /no non-terminated EC2 instance matches switchyard:node=p for node "p" of cluster "main"/);
      return true;
    });
    await assert.rejects(act.ec2StopInstance({ cluster: 'main', node: 's' }), { type: 'ConfigError' });
  });
});
