/**
 * The activity options hooks and command drivers run under (src/workflows/lib/activity-options.ts,
 * as site-activities.ts uses them): each call gets the time its command may take, and only as many
 * attempts as running it again is safe.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterLayout } from '../../src/topology/layout';
import { buildTopology, FAKE_HOST_KEY } from '../support/topology';
import { hookActivityOptions, SITE_ACT_MARGIN_SECONDS, trafficActivityOptions } from '../../src/workflows/lib/activity-options';

/** A layout from a real topology, so the test reads what the workflow gets from clusterLayout. */
function layout() {
  const top = buildTopology({
    sites: {
      dc1: {},
      dc2: {
        hooks: {
          afterPromote: [
            { name: 'repoint', host: 'h2', command: ['repoint'], check: ['is-repointed'], timeoutSeconds: 600 },
            { name: 'page', host: 'h2', command: ['page-team'] },
          ],
        },
      },
    },
    hosts: {
      h1: { site: 'dc1', address: '10.0.0.1', hostKey: FAKE_HOST_KEY },
      h2: { site: 'dc2', address: '10.0.0.2', hostKey: FAKE_HOST_KEY },
      lb: { address: '10.0.0.3', hostKey: FAKE_HOST_KEY },
    },
    traffic: [
      {
        kind: 'haproxy',
        name: 'front',
        admin: { address: '10.0.0.3', port: 9999 },
        backend: 'pg',
        servers: { dc1: 'a', dc2: 'b' },
        listen: { address: '10.0.0.3', port: 5432 },
      },
      { kind: 'command', name: 'dns', host: 'lb', move: ['set-dns', '{site}'], read: ['get-dns'], timeoutSeconds: 200 },
      { kind: 'command', name: 'dns2', host: 'lb', move: ['set-dns', '{site}'], read: ['get-dns'] },
    ],
  });
  return clusterLayout('main', top.clusters.main);
}

describe('hook options', () => {
  it('the layout says whether a hook has a check, never the command lines', () => {
    const l = layout();
    assert.deepEqual(l.hooks, [
      { site: 'dc2', name: 'repoint', host: 'h2', timeoutSeconds: 600, check: true },
      { site: 'dc2', name: 'page', host: 'h2', timeoutSeconds: 300, check: false },
    ]);
    assert.equal(JSON.stringify(l).includes('page-team'), false);
    assert.deepEqual(
      l.hosts.find((h) => h.name === 'lb'),
      { name: 'lb', site: null, address: '10.0.0.3', port: 22 },
    );
  });

  it("with a check: its timeout plus the check's minute plus a margin, two attempts, heartbeats", () => {
    const o = hookActivityOptions(layout().hooks[0]);
    assert.equal(o.startToCloseTimeout, `${600 + 60 + SITE_ACT_MARGIN_SECONDS} seconds`);
    assert.equal(o.heartbeatTimeout, '30 seconds');
    assert.equal(o.retry?.maximumAttempts, 2);
    assert.ok(o.retry?.nonRetryableErrorTypes?.includes('ConfigError'));
  });

  it('without a check: its timeout plus a margin (not the generic 3 minutes), exactly one attempt', () => {
    const o = hookActivityOptions(layout().hooks[1]);
    assert.equal(o.startToCloseTimeout, `${300 + SITE_ACT_MARGIN_SECONDS} seconds`);
    assert.equal(o.retry?.maximumAttempts, 1);
    // A layout recorded before `check` existed: no check, one attempt.
    assert.equal(hookActivityOptions({ timeoutSeconds: 30 } as { timeoutSeconds: number; check: boolean }).retry?.maximumAttempts, 1);
  });
});

describe('traffic options', () => {
  it('a command driver: read, move and read back within its timeout each, plus a margin, three attempts', () => {
    const [front, dns, dns2] = layout().traffic;
    assert.deepEqual(dns, { name: 'dns', kind: 'command', timeoutSeconds: 200 });
    assert.equal(trafficActivityOptions(dns)?.startToCloseTimeout, `${3 * 200 + SITE_ACT_MARGIN_SECONDS} seconds`);
    assert.equal(trafficActivityOptions(dns)?.retry?.maximumAttempts, 3);
    assert.equal(trafficActivityOptions(dns)?.heartbeatTimeout, '30 seconds');
    assert.equal(trafficActivityOptions(dns2)?.startToCloseTimeout, `${3 * 120 + SITE_ACT_MARGIN_SECONDS} seconds`, 'the schema default, 120 s');
    assert.equal(trafficActivityOptions(front), null, 'other kinds keep the generic action options');
    // A layout recorded before timeoutSeconds was in it: the generic options, as then.
    assert.equal(trafficActivityOptions({ name: 'dns', kind: 'command' }), null);
  });
});
