/**
 * The readiness workflow on a real Temporal server with fake activities: what the report says
 * for a healthy cluster, a standby that is down, and two primaries; that its step log is
 * queryable and its search attributes show it in `temporal workflow list`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createLayoutActivities } from '../../src/activities/cluster-layout';
import type { WalArchiveStatus } from '../../src/contract/wal-archive';
import type { PgBackupEntry, PgBackupManifest } from '../../src/contract/backup';
import type {
  FenceState,
  MaintenanceState,
  PgLag,
  PgNodeStatus,
  PgWriteProbe,
  ServiceState,
  SshCheck,
  TrafficState,
  Ec2InstanceInfo,
} from '../../src/contract/observations';
import { loadTopology } from '../../src/topology/load';
import type { readiness } from '../../src/workflows';
import type { ReadinessReport } from '../../src/contract/readiness';
import type { Progress } from '../../src/contract/messages';
import { SA_CLUSTER, SA_OPERATION } from '../../src/workflows/lib/search-attributes';
import { startTestTemporal, workflowBundle } from '../support/temporal';

const topology = loadTopology(join(__dirname, '../../examples/switchyard.yaml'));

interface World {
  nodes: Record<string, PgNodeStatus>;
  sshDown: string[];
  trafficSite: string | null;
  lagBytes: number;
  /** Hours since the newest backup a drill proved restorable was made; null: none proven. */
  provenBackupHoursAgo: number | null;
  /** Nodes whose data directory carries a failover's fence marker. */
  fenced?: string[];
}

function healthy(): World {
  const base = { cluster: 'shop', reachable: true, timeline: 1, systemIdentifier: '7300000000000000001' };
  return {
    nodes: {
      'eu1-db': {
        ...base,
        node: 'eu1-db',
        site: 'eu1',
        inRecovery: false,
        currentLsn: '0/3000148',
        slots: [{ name: 'eu2_db', active: true, restartLsn: '0/3000148' }],
        replicas: [],
      },
      'eu2-db': {
        ...base,
        node: 'eu2-db',
        site: 'eu2',
        inRecovery: true,
        receiveLsn: '0/3000148',
        replayLsn: '0/3000148',
        walReceiver: { status: 'streaming', senderHost: '10.1.0.10', senderPort: 5432, slotName: 'eu2_db' },
      },
    },
    sshDown: [],
    trafficSite: 'eu1',
    lagBytes: 0,
    provenBackupHoursAgo: 3,
  };
}

/** Fake activities answering from `world`; the layout activity is the real one over the example topology. */
function fakeActivities(world: World) {
  return {
    ...createLayoutActivities(() => topology),
    async pgStatus({ node }: { cluster: string; node: string }): Promise<PgNodeStatus> {
      return world.nodes[node];
    },
    async pgWriteProbe({ node }: { cluster: string; node: string }): Promise<PgWriteProbe> {
      return { node, ok: true, lsn: '0/3000200', detail: `wrote switchyard.heartbeat on ${node} at 0/3000200` };
    },
    async pgLag({ primary, standby }: { cluster: string; primary: string; standby: string }): Promise<PgLag> {
      return {
        primary,
        standby,
        primaryLsn: '0/3000200',
        receiveLsn: '0/3000200',
        replayLsn: '0/3000200',
        lagBytes: world.lagBytes,
        lagSeconds: world.lagBytes ? 12 : 0,
      };
    },
    async sshCheck({ host }: { cluster: string; host: string }): Promise<SshCheck> {
      const h = topology.clusters.shop.hosts[host];
      const down = world.sshDown.includes(host);
      return {
        host,
        site: h.site ?? null,
        address: h.address,
        port: h.port,
        ok: !down,
        outcome: down ? 'unreachable' : 'ok',
        detail: down ? `connect ECONNREFUSED ${h.address}:${h.port}` : 'key matches the pinned key',
      };
    },
    async serviceStatus({ site, service }: { cluster: string; site: string; service: string }): Promise<ServiceState> {
      return { site, service, host: `${site}-app`, running: site === 'eu1', detail: '' };
    },
    async maintenanceStatus({ site }: { cluster: string; site: string }): Promise<MaintenanceState> {
      return { site, on: false, httpStatus: 200, detail: 'maintenance off, HTTP 200' };
    },
    async trafficRead({ driver }: { cluster: string; driver: string }): Promise<TrafficState> {
      const kind = topology.clusters.shop.traffic.find((d) => d.name === driver)!.kind;
      return { driver, kind, site: world.trafficSite, target: world.trafficSite ? `${world.trafficSite}-db` : null, detail: '' };
    },
    async fenceRead({ node }: { cluster: string; node: string }): Promise<FenceState> {
      const marked = world.fenced?.includes(node) ?? false;
      return {
        node,
        readable: true,
        marker: marked ? { fencedBy: 'failover-1', newPrimary: 'eu2-db', at: '2026-12-01T00:00:00.000Z', reason: 'eu1 lost power' } : null,
        standbySignal: marked || world.nodes[node].inRecovery === true,
        detail: marked ? `${node} is fenced` : `${node} carries no fence marker`,
      };
    },
    async pgBackupList(): Promise<PgBackupEntry[]> {
      if (world.provenBackupHoursAgo === null) return [];
      const made = new Date(Date.now() - world.provenBackupHoursAgo * 3600_000).toISOString();
      const manifest = { backupId: 'b1', startedAt: made, finishedAt: made, totalBytes: 1 } as PgBackupManifest;
      return [
        {
          backupId: 'b1',
          dir: '/srv/backups/shop/b1',
          complete: true,
          manifest,
          drill: { backupId: 'b1', provenAt: made, workflowId: 'drill-1', rtoSeconds: 4, rpoSeconds: 60, rowCounts: {}, queries: [] },
          modifiedAt: made,
        },
      ];
    },
    async walArchiveStatus(): Promise<WalArchiveStatus> {
      const primary = Object.entries(world.nodes).find(([, n]) => n.reachable && n.inRecovery === false)?.[0] ?? null;
      return {
        cluster: 'shop',
        running: true,
        pid: 4242,
        source: primary,
        streaming: primary !== null,
        primaryLsn: '0/5000000',
        flushLsn: '0/5000000',
        lagBytes: primary ? 0 : null,
        lagSeconds: primary ? 0 : null,
        newest: '000000010000000000000005.partial',
        segments: 4,
        problems: [],
        detail: primary ? `pg_receivewal (pid 4242) streams from ${primary}: 0 bytes, 0 s behind` : 'archive lag unknown: no primary',
      };
    },
    async ec2Instances(): Promise<Ec2InstanceInfo[]> {
      return ['eu1', 'eu2'].map((site, i) => ({
        node: `${site}-db`,
        site,
        instanceId: `i-000000000000000${i}`,
        state: 'running',
        privateIp: `10.${i + 1}.0.10`,
        publicIp: null,
        instanceType: 't3.micro',
        subnetId: `subnet-${i}`,
        securityGroupIds: ['sg-1'],
        volumes: [],
        detail: '',
      }));
    },
  };
}

describe('readiness workflow (real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await startTestTemporal();
  });
  after(async () => {
    await env?.teardown();
  });

  async function run(world: World, cluster = 'shop') {
    const taskQueue = `test-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: fakeActivities(world),
    });
    return worker.runUntil(async () => {
      const handle = await env.client.workflow.start<typeof readiness>('readiness', {
        taskQueue,
        workflowId: `readiness-${randomUUID()}`,
        args: [{ cluster }],
      });
      const report: ReadinessReport | Error = await handle.result().catch((e: Error) => e);
      const progress = await handle.query<Progress>('progress');
      const desc = await handle.describe();
      return { report, progress, desc };
    });
  }

  it('a healthy cluster is ready: eu1 primary, eu2 streaming, traffic on eu1', async () => {
    const { report, progress, desc } = await run(healthy());
    assert.ok(!(report instanceof Error), String(report));
    assert.equal(report.ready, true, JSON.stringify(report.checks.filter((c) => !c.ok)));
    assert.equal(report.primarySite, 'eu1');
    assert.equal(report.standbySite, 'eu2');
    assert.equal(report.lagBytes, 0);
    assert.deepEqual(Object.fromEntries(Object.entries(report.traffic).map(([k, v]) => [k, v.site])), { public: 'eu1', dns: 'eu1' });
    assert.ok(report.checks.some((c) => c.name === 'standby:eu2-db' && c.ok && /streams from 10\.1\.0\.10:5432 via slot eu2_db/.test(c.detail)));
    // the step log: one entry per observation, the write probe, the verdict
    const names = progress.steps.map((s) => s.name);
    for (const n of ['layout', 'postgres:eu1-db', 'postgres:eu2-db', 'ssh:eu2-app', 'traffic:public', 'ec2', 'write-probe', 'lag:eu2-db', 'backups', 'verdict'])
      assert.ok(names.includes(n), `step ${n} in ${names.join(', ')}`);
    assert.ok(progress.steps.every((s) => s.state === 'done' && s.endedAt !== null));
    assert.equal(progress.waitingFor, null);
    assert.equal(desc.typedSearchAttributes.get(SA_CLUSTER), 'shop');
    assert.equal(desc.typedSearchAttributes.get(SA_OPERATION), 'readiness');
  });

  it('a standby that is down makes the cluster not ready, with the reason', async () => {
    const world = healthy();
    world.nodes['eu2-db'] = { cluster: 'shop', node: 'eu2-db', site: 'eu2', reachable: false, error: 'connect ECONNREFUSED 10.2.0.10:5432' };
    const { report, progress } = await run(world);
    assert.ok(!(report instanceof Error));
    assert.equal(report.ready, false);
    assert.equal(report.primarySite, 'eu1');
    const c = report.checks.find((x) => x.name === 'standby:eu2-db');
    assert.deepEqual(c, { name: 'standby:eu2-db', ok: false, detail: 'eu2-db (eu2) is unreachable: connect ECONNREFUSED 10.2.0.10:5432' });
    assert.equal(report.lagBytes, null);
    const verdict = progress.steps.find((s) => s.name === 'verdict');
    assert.equal(verdict?.state, 'failed');
    assert.match(verdict?.detail ?? '', /not ready: .*standby:eu2-db/);
  });

  it("a fenced former primary (a failover's marker in its data directory) is not ready, with the rejoin command", async () => {
    const world = healthy();
    // eu2 was promoted; eu1 came back read-only (standby.signal) and carries the marker.
    world.nodes['eu2-db'] = { ...world.nodes['eu1-db'], node: 'eu2-db', site: 'eu2' };
    world.nodes['eu1-db'] = {
      cluster: 'shop',
      node: 'eu1-db',
      site: 'eu1',
      reachable: true,
      inRecovery: true,
      timeline: 1,
      receiveLsn: null,
      replayLsn: '0/3000148',
      walReceiver: null,
    };
    world.trafficSite = 'eu2';
    world.fenced = ['eu1-db'];
    const { report, progress } = await run(world);
    assert.ok(!(report instanceof Error), String(report));
    assert.equal(report.ready, false);
    const c = report.checks.find((x) => x.name === 'fence:eu1-db');
    assert.equal(c?.ok, false);
    assert.match(
      c?.detail ?? '',
      /eu1-db is a fenced former primary \(fenced by failover-1 .*eu2-db was promoted in its place\): run `switchyard rejoin shop --node eu1-db`/,
    );
    assert.ok(progress.steps.some((s) => s.name === 'fence:eu1-db' && s.state === 'done'));
    assert.equal(
      report.checks.find((x) => x.name === 'fence:eu2-db'),
      undefined,
      'an unmarked node adds no check',
    );
  });

  it('a standby too far behind, an unreachable host and traffic on the wrong site each fail their check', async () => {
    const world = healthy();
    world.lagBytes = 64 * 1024 * 1024;
    world.sshDown = ['eu2-app'];
    world.trafficSite = 'eu2';
    const { report } = await run(world);
    assert.ok(!(report instanceof Error));
    assert.equal(report.ready, false);
    const failed = Object.fromEntries(report.checks.filter((c) => !c.ok).map((c) => [c.name, c.detail]));
    assert.deepEqual(Object.keys(failed).sort(), ['lag:eu2-db', 'ssh:eu2-app', 'traffic:dns', 'traffic:public']);
    assert.match(failed['lag:eu2-db'], /^64\.0 MiB behind \(12\.0 s\); bound 16\.0 MiB$/);
    assert.match(failed['ssh:eu2-app'], /ECONNREFUSED/);
    assert.match(failed['traffic:public'], /not the primary site eu1/);
  });

  it('a backup proven restorable longer ago than backup.maxRestorableAge (2d in the example) makes the cluster not ready', async () => {
    const world = healthy();
    world.provenBackupHoursAgo = 60;
    const { report } = await run(world);
    assert.ok(!(report instanceof Error));
    assert.equal(report.ready, false);
    const failed = report.checks.filter((c) => !c.ok);
    assert.deepEqual(
      failed.map((c) => c.name),
      ['backup'],
    );
    assert.match(failed[0].detail, /newest proven-restorable backup b1 is 2\.5 d old .*maximum 2 d/);
    // The age is taken at workflow time, which can precede the moment the fake activity read its
    // clock by as long as the activity took to be scheduled and run (seconds on a busy machine).
    const age = report.newestProvenBackupAgeSeconds;
    assert.ok(typeof age === 'number' && Math.abs(age - 60 * 3600) < 300, `age ${age} s, 60 h is ${60 * 3600} s`);
    world.provenBackupHoursAgo = null;
    const none = await run(world);
    assert.ok(!(none.report instanceof Error));
    assert.match(none.report.checks.find((c) => c.name === 'backup')!.detail, /no backup has been proven restorable/);
  });

  it('two primaries are reported as split brain and no write is tried', async () => {
    const world = healthy();
    world.nodes['eu2-db'] = { ...world.nodes['eu2-db'], inRecovery: false, walReceiver: null, currentLsn: '0/4000000' };
    const { report, progress } = await run(world);
    assert.ok(!(report instanceof Error));
    assert.equal(report.ready, false);
    assert.equal(report.primarySite, null);
    assert.match(report.checks.find((c) => c.name === 'primary')!.detail, /^split brain: eu1-db \(eu1\) and eu2-db \(eu2\)/);
    assert.equal(progress.steps.find((s) => s.name === 'write-probe')?.state, 'skipped');
  });

  it('an unknown cluster fails at once with a message naming the known ones', async () => {
    const { report } = await run(healthy(), 'nope');
    assert.ok(report instanceof WorkflowFailedError);
    let e: unknown = report;
    while (e instanceof Error && e.cause instanceof Error) e = e.cause;
    assert.equal((e as Error).message, 'unknown cluster "nope"; the worker\'s topology has: "shop"');
  });
});
