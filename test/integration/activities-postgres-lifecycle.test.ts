/**
 * The PostgreSQL lifecycle activities, runHook, ec2StopInstance and lastPrimaryPosition against
 * the real sandbox: pg_ctl over SSH on the node hosts, moto, the sandbox's Temporal. Cases that
 * change the sandbox put it back (fence → start) or come last (the promotion); the sandbox is
 * taken down in `after` whatever happens.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Connection, type Client } from '@temporalio/client';
import { topologyTarget } from '../../src/temporal-access';
import { clientConnectionOptions, targetClient } from '../../src/temporal-connection';
import { startPart, stopPart } from '../../sandbox';
import { listProcs } from '../../sandbox/procs';
import { createActivities, type Activities } from '../../src/activities';
import type { Topology } from '../../src/topology/schema';
import type { ReadinessReport } from '../../src/contract/readiness';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';
import { nodeQuery } from '../support/pg';

const CLUSTER = 'demo';
const LSN_RE = /^[0-9A-F]+\/[0-9A-F]+$/;
const bin = join(__dirname, '../../bin/switchyard.js');

let sb: TestSandbox | undefined;
let connection: Connection | undefined;
let temporal: Client;
let act: Activities;
let top: Topology;

const node = (name: string) => top.clusters[CLUSTER].postgres.nodes[name];

/** A query as the tool's user, with the test's own client (not through the activities). */
const query = <T extends Record<string, unknown>>(nodeName: string, text: string, values: unknown[] = []) => nodeQuery<T>(top, CLUSTER, nodeName, text, values);

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function postmasterOf(nodeName: string): number {
  return Number(readFileSync(join(node(nodeName).dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/**
 * SIGSTOP a postmaster and every child it has; returns the undo. (stopPart's 'pause' stops the
 * postmaster's process group, but each postmaster child calls setsid() and leads its own group:
 * the walreceiver would go on streaming.)
 */
function pauseTree(pid: number): () => void {
  const pids = [
    pid,
    ...listProcs()
      .filter((p) => p.ppid === pid)
      .map((p) => p.pid),
  ];
  const signal = (sig: NodeJS.Signals) => {
    for (const p of pids) {
      try {
        process.kill(p, sig);
      } catch {
        /* gone */
      }
    }
  };
  signal('SIGSTOP');
  return () => signal('SIGCONT');
}

/** `switchyard check demo --json` as an operator runs it: a readiness workflow with an in-process worker. */
function check(): Promise<{ code: number | null; report: ReadinessReport; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [bin, 'check', CLUSTER, '--json', '--config', sb!.status.config],
      { env: { ...process.env, TEMPORAL_ADDRESS: sb!.status.temporal.address, SWITCHYARD_CONFIG: '' }, timeout: 180_000 },
      (err, stdout, stderr) => {
        try {
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, report: JSON.parse(stdout) as ReadinessReport, stderr });
        } catch {
          reject(new Error(`check printed no JSON (${err?.message ?? 'exit 0'}):\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

before(async () => {
  sb = await startTestSandbox();
  const t: Topology = structuredClone(sb.topology);
  // One afterPromote hook at dc2 (the sandbox configures none): writes a file on dc2-app and exits 3.
  t.clusters[CLUSTER].sites.dc2.hooks.afterPromote.push({
    name: 'mark',
    host: 'dc2-app',
    command: ['sh', '-c', 'echo "promoted at $1" > "$0" && echo marked && exit 3', join(sb.dir, 'dc2-app', 'hook-ran'), 'dc2'],
    timeoutSeconds: 30,
  });
  top = t;
  // The sandbox encrypts payloads: the activities' client reads runs with its codec, as the worker's does.
  const target = await topologyTarget(sb.config, { address: sb.status.temporal.address, namespace: 'default' });
  connection = await Connection.connect(clientConnectionOptions(target, { connectTimeout: '10 seconds' }));
  temporal = targetClient(target, connection);
  act = createActivities({ topology: () => top, temporal: () => temporal });
});

after(async () => {
  await connection?.close().catch(() => undefined);
  await sb?.down();
});

describe('reads', () => {
  it('pgControlData reads both nodes: the primary in production, the standby in archive recovery, one system', async () => {
    const [p, s] = await Promise.all([act.pgControlData({ cluster: CLUSTER, node: 'dc1-db' }), act.pgControlData({ cluster: CLUSTER, node: 'dc2-db' })]);
    assert.equal(p.ok, true, p.detail);
    assert.equal(p.state, 'in production');
    assert.match(p.checkpointLsn ?? '', LSN_RE);
    assert.equal(p.timeline, 1);
    assert.equal(s.ok, true, s.detail);
    assert.equal(s.state, 'in archive recovery');
    assert.equal(s.systemIdentifier, p.systemIdentifier);
    assert.match(s.minRecoveryEndLsn ?? '', LSN_RE);
  });

  it('lastPrimaryPosition: none on a fresh Temporal; after a readiness run, the position it saw', async () => {
    const none = await act.lastPrimaryPosition({ cluster: CLUSTER });
    assert.equal(none.found, false);
    assert.match(none.detail, /no completed readiness run of cluster "demo"/);

    const { code, report, stderr } = await check();
    assert.equal(code, 0, stderr);
    assert.match(report.primaryLsn ?? '', LSN_RE);

    // Visibility is eventually consistent: the completed run shows up in the list shortly after.
    let last = none;
    await waitFor('the readiness run to be listed', async () => (last = await act.lastPrimaryPosition({ cluster: CLUSTER })).found, 20_000);
    assert.deepEqual([last.lsn, last.node, last.site, last.observedAt], [report.primaryLsn, 'dc1-db', 'dc1', report.observedAt]);
    assert.match(last.workflowId ?? '', /^readiness-demo-/);
  });

  it('runHook runs the named hook on its host and returns its non-zero exit; unknown names list the known ones', async () => {
    const r = await act.runHook({ cluster: CLUSTER, site: 'dc2', hook: 'mark' });
    assert.deepEqual([r.hook, r.site, r.host, r.exitCode, r.stdout], ['mark', 'dc2', 'dc2-app', 3, 'marked\n']);
    assert.equal(readFileSync(join(sb!.dir, 'dc2-app', 'hook-ran'), 'utf8'), 'promoted at dc2\n');
    await assert.rejects(
      act.runHook({ cluster: CLUSTER, site: 'dc2', hook: 'nope' }),
      (e: Error & { type?: string }) => e.type === 'ConfigError' && /unknown hook "nope" .*; known: (.*, )?"mark"/.test(e.message),
    );
  });
});

describe('fence and start again', () => {
  it('with the host unreachable over SSH: not fenced, and it says PostgreSQL still answers', async () => {
    await stopPart(sb!.opts, 'dc1-db/sshd');
    try {
      const f = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db', fastTimeoutSeconds: 5 });
      assert.deepEqual(
        [f.sshReachable, f.wasRunning, f.stopped, f.refusesConnections, f.fenced, f.changed, f.control],
        [false, null, false, false, false, false, null],
      );
      assert.match(f.detail, /NOT fenced: its host dc1-db cannot be reached over SSH; PostgreSQL at .* accepts connections/);
    } finally {
      await startPart(sb!.opts, 'dc1-db/sshd');
    }
    assert.equal((await query<{ r: boolean }>('dc1-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, false, 'the primary was left running');
  });

  it('fences the primary: stopped fast, refusing connections, a clean shutdown checkpoint; a second fence changes nothing', async () => {
    const f = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db' });
    assert.deepEqual(
      [f.sshReachable, f.wasRunning, f.stoppedWith, f.stopped, f.refusesConnections, f.fenced, f.changed, f.host],
      [true, true, 'fast', true, true, true, true, 'dc1-db'],
      f.steps.join('\n'),
    );
    assert.equal(f.control?.ok, true);
    assert.equal(f.control?.state, 'shut down');
    assert.match(f.control?.checkpointLsn ?? '', LSN_RE);
    // Seen with the test's own client: nothing answers there any more.
    await assert.rejects(query('dc1-db', 'SELECT 1'), /ECONNREFUSED/);

    const again = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db' });
    assert.deepEqual([again.wasRunning, again.stoppedWith, again.stopped, again.fenced, again.changed], [false, null, true, true, false]);
    assert.equal(again.control?.checkpointLsn, f.control?.checkpointLsn);
    assert.ok(!again.steps.some((s) => /pg_ctl stop/.test(s)));
  });

  it('pgStart brings the fenced primary back and it takes writes again; a second start changes nothing', async () => {
    const r = await act.pgStart({ cluster: CLUSTER, node: 'dc1-db' });
    assert.deepEqual([r.changed, r.running], [true, true], r.detail);
    const logFile = join(node('dc1-db').configDir!, 'switchyard-pg.log');
    assert.ok(existsSync(logFile), `${logFile} written by pg_ctl start -l`);
    const probe = await act.pgWriteProbe({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(probe.ok, true, probe.detail);
    await query('dc1-db', `INSERT INTO public.sandbox_rows (note) VALUES ('after pgStart')`);
    assert.equal((await query<{ n: string }>('dc1-db', `SELECT count(*) AS n FROM public.sandbox_rows WHERE note = 'after pgStart'`))[0].n, '1');
    const again = await act.pgStart({ cluster: CLUSTER, node: 'dc1-db' });
    assert.deepEqual([again.changed, again.running], [false, true]);
  });

  it('falls back to -m immediate when a fast stop cannot finish (a paused standby holds the shutdown), then starts again', async () => {
    // A fast shutdown waits for the walsender to see the standby confirm the shutdown checkpoint:
    // the standby must be streaming again (it reconnects a few seconds after the restart), then stopped.
    await waitFor('dc2-db to stream from dc1-db again', async () => {
      const s = await act.pgStatus({ cluster: CLUSTER, node: 'dc1-db' });
      return s.replicas?.some((r) => r.state === 'streaming') ?? false;
    });
    const resume = pauseTree(postmasterOf('dc2-db'));
    let f;
    try {
      f = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db', fastTimeoutSeconds: 2 });
    } finally {
      resume();
    }
    assert.deepEqual(
      [f.wasRunning, f.stoppedWith, f.stopped, f.refusesConnections, f.fenced, f.changed],
      [true, 'immediate', true, true, true, true],
      f.steps.join('\n'),
    );
    assert.match(f.steps.join('\n'), /pg_ctl stop -m fast, waiting up to 2 s: exited 1: still running after 200 checks/);
    // The shutdown checkpoint was written before the walsender wait: the control file says "shut down".
    assert.equal(f.control?.state, 'shut down');
    const r = await act.pgStart({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(r.running, true);
    assert.equal((await act.pgWriteProbe({ cluster: CLUSTER, node: 'dc1-db' })).ok, true);
  });
});

describe('EC2', () => {
  it("ec2StopInstance stops the node's instance in moto; a second call changes nothing", async () => {
    const r = await act.ec2StopInstance({ cluster: CLUSTER, node: 'dc1-db' });
    assert.match(r.instanceId ?? '', /^i-[0-9a-f]+$/);
    assert.deepEqual([r.stateBefore, r.stateAfter, r.changed], ['running', 'stopped', true], r.detail);
    const seen = (await act.ec2Instances({ cluster: CLUSTER })).find((i) => i.node === 'dc1-db');
    assert.equal(seen?.state, 'stopped');
    assert.equal((await act.ec2Instances({ cluster: CLUSTER })).find((i) => i.node === 'dc2-db')?.state, 'running', "the other node's instance is untouched");
    const again = await act.ec2StopInstance({ cluster: CLUSTER, node: 'dc1-db' });
    assert.deepEqual([again.instanceId, again.stateBefore, again.stateAfter, again.changed], [r.instanceId, 'stopped', 'stopped', false]);
  });
});

describe('promotion (last: it changes the cluster for good)', () => {
  it('promotes dc2-db once: out of recovery on the next timeline; a second pgPromote is changed:false', async () => {
    const before = await act.pgStatus({ cluster: CLUSTER, node: 'dc2-db' });
    assert.deepEqual([before.reachable, before.inRecovery], [true, true], before.error);
    const p = await act.pgPromote({ cluster: CLUSTER, node: 'dc2-db' });
    assert.equal(p.changed, true, p.detail);
    assert.equal(p.timeline, (before.timeline ?? 0) + 1);
    assert.match(p.lsn ?? '', LSN_RE);
    const after = await act.pgStatus({ cluster: CLUSTER, node: 'dc2-db' });
    assert.deepEqual([after.inRecovery, after.timeline], [false, p.timeline]);
    assert.equal((await act.pgWriteProbe({ cluster: CLUSTER, node: 'dc2-db' })).ok, true);

    const again = await act.pgPromote({ cluster: CLUSTER, node: 'dc2-db' });
    assert.deepEqual([again.changed, again.timeline], [false, p.timeline]);
    assert.match(again.detail, /^already primary on timeline \d+/);
    const control = await act.pgControlData({ cluster: CLUSTER, node: 'dc2-db' });
    assert.equal(control.state, 'in production');
  });
});
