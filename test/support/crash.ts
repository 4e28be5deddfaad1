/**
 * The crash matrix of issue 11: a runbook run once without a crash on a fresh sandbox (the
 * reference: its steps, taken from its own step log, and the end state), then, for a step of that
 * list, run again on another fresh sandbox with the worker (a separate `switchyard worker`
 * process) SIGKILLed while that step runs, or just after it completed; a new worker is started and
 * the run finished, checkpoints answered as a person would. The end state an operator checks must
 * equal the reference's: who is primary, the timelines (advanced exactly once), where every
 * traffic driver points, services, maintenance, slots, fence markers, backups and snapshots
 * counted, the lock released.
 *
 * test/integration/crash-sample.test.ts runs a rotating sample of steps (the seed is printed:
 * SWITCHYARD_CRASH_SEED reruns it); `npm run test:crash` (scripts/crash-matrix.ts) runs them all.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { WorkflowNotFoundError } from '@temporalio/client';
import { sandboxUp } from '../../sandbox';
import { guardReleaseSignal, guardStatusQuery, guardWorkflowId, type GuardEvent } from '../../src/contract/guard';
import { decide } from '../../src/client/runs';
import { holderQuery, lockWorkflowId } from '../../src/contract/cluster-lock';
import type { Progress } from '../../src/contract/messages';
import { startStage, type Stage, type StageOptions } from './stage';
import { startWorkerProcess, type WorkerProcess } from './worker';

export interface CrashSpec {
  /** The workflow type, as started by a person. */
  runbook: string;
  stage?: StageOptions;
  /** Puts the fresh sandbox in the starting state, with the worker running (never crashed); what it returns is handed to `input`. */
  setup?: (st: Stage) => Promise<Record<string, string> | void>;
  input: (st: Stage, made: Record<string, string>) => Record<string, unknown>;
  /** Which steps of the reference are crashed (default: all; e.g. leave out the lock's own steps). */
  steps?: (names: string[]) => string[];
  /** The end state an operator checks (default: clusterState); `id` is the run's workflow id. */
  snapshot?: (st: Stage, id: string) => Promise<Record<string, unknown>>;
  /**
   * For a run that never ends by itself (the guard): called while it runs, it does what ends it
   * (as rejoin would) once the run has done its part.
   */
  settle?: (st: Stage, id: string) => Promise<void>;
}

export interface RunOutcome {
  /** The run's result outcome, or "failed: <type>" for a failed run. */
  result: string;
  /** Action steps in the order they started (from the worker's log), duplicates removed. */
  steps: string[];
  state: Record<string, unknown>;
}

export interface CrashOutcome {
  runbook: string;
  step: string;
  when: 'during' | 'after';
  /** The step was not reached (the run took another path): nothing was killed. */
  reached: boolean;
  result: string;
  /** Keys of the end state that differ from the reference, with both values. */
  diverged: { key: string; reference: unknown; crashed: unknown }[];
  seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What an operator checks after a runbook, read directly (never through switchyard). */
export async function clusterState(st: Stage): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const nodes = Object.keys(st.cluster.postgres.nodes);
  let primary: string | null = null;
  for (const n of nodes) {
    // Read three times before calling a node down (a busy machine can time a read out). Down is
    // a refused connection; any other failure is "unreadable (<why>)", so a divergence says which.
    let lastError: { code?: string; message: string } | null = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const [r] = await st.nodeQuery(
          n,
          `SELECT pg_is_in_recovery() AS ro, (SELECT timeline_id FROM pg_control_checkpoint()) AS cp,
                  CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS wal,
                  (SELECT status FROM pg_stat_wal_receiver) AS rx`,
        );
        out[`${n}.role`] = r.ro ? 'standby' : 'primary';
        out[`${n}.timeline`] = Math.max(Number(r.cp ?? 0), Number(r.wal ?? 0));
        if (r.ro) out[`${n}.streaming`] = r.rx === 'streaming';
        if (!r.ro) primary = n;
        lastError = null;
        break;
      } catch (err) {
        lastError = err as { code?: string; message: string };
        if (lastError.code === 'ECONNREFUSED') break;
        await sleep(1000);
      }
    }
    if (lastError !== null)
      out[`${n}.role`] =
        lastError.code === 'ECONNREFUSED' ? 'down' : `unreadable (${lastError.code ?? lastError.message.replace(/[\d.:]+/g, '#').slice(0, 80)})`;
    const dir = st.cluster.postgres.nodes[n].dataDir;
    out[`${n}.fenceMarker`] = existsSync(join(dir, 'switchyard-fence.json'));
    out[`${n}.standbySignal`] = existsSync(join(dir, 'standby.signal'));
  }
  if (primary) out.slots = (await st.nodeQuery(primary, 'SELECT slot_name FROM pg_replication_slots ORDER BY 1')).map((r) => r.slot_name);
  out.front = await st
    .frontQuery('SELECT host(inet_server_addr()) AS a')
    .then(([r]) => nodes.find((n) => st.cluster.postgres.nodes[n].host === r.a) ?? String(r.a))
    .catch(() => null);
  out.eip = await st.eipNode().catch(() => 'unreadable');
  out.vip = await st.privateIpNodes().catch(() => 'unreadable');
  const dns = st.cluster.traffic.find((d) => d.kind === 'command');
  if (dns && dns.kind === 'command')
    out.dns = (() => {
      try {
        return readFileSync(dns.read[dns.read.length - 1], 'utf8')
          .trim()
          .split(' ')[0];
      } catch {
        return null;
      }
    })();
  for (const site of Object.keys(st.cluster.sites)) {
    for (const svc of Object.keys(st.cluster.sites[site].services)) out[`service:${site}/${svc}`] = await st.serviceRunning(site, svc);
    out[`maintenance:${site}`] = (await st.maintenance(site)).on;
  }
  out.lockHolder = await lockHolder(st);
  out.guardWatching = await guardWatching(st);
  if (st.cluster.backup) {
    const dir = join(st.cluster.backup.root, st.sb.cluster);
    const entries = existsSync(dir) ? readdirSync(dir) : [];
    out.backupsComplete = entries.filter((d) => existsSync(join(dir, d, 'switchyard-manifest.json')) && !d.endsWith('.partial') && !d.startsWith('.')).length;
    out.backupsPartial = entries.filter((d) => d.endsWith('.partial')).length;
    out.backupsProven = entries.filter((d) => existsSync(join(dir, d, 'drill.json'))).length;
    out.drillScratch = entries.filter((d) => d.startsWith('.drill')).length;
  }
  if (st.cluster.ec2) out.snapshots = await snapshotCount(st).catch(() => 'unreadable');
  return out;
}

async function lockHolder(st: Stage): Promise<string | null> {
  const h = st.client.workflow.getHandle(lockWorkflowId(st.sb.cluster));
  try {
    if ((await h.describe()).status.name !== 'RUNNING') return null;
    const holder = await h.query(holderQuery);
    return holder ? `${holder.operation} ${holder.workflowId}` : null;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

async function guardWatching(st: Stage): Promise<string[]> {
  const h = st.client.workflow.getHandle(guardWorkflowId(st.sb.cluster));
  try {
    if ((await h.describe()).status.name !== 'RUNNING') return [];
    return (await h.query(guardStatusQuery)).watching.map((w) => `${w.node} for ${w.newPrimary}`).sort();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return [];
    throw err;
  }
}

async function snapshotCount(st: Stage): Promise<number> {
  const c = st.cluster.ec2!;
  const secret = (f: string | undefined) => readFileSync(f!, 'utf8').trim();
  const ec2 = new EC2Client({
    region: c.region,
    endpoint: c.endpoint,
    credentials: { accessKeyId: secret(c.credentials!.accessKeyId.file), secretAccessKey: secret(c.credentials!.secretAccessKey.file) },
  });
  try {
    const r = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'tag:switchyard:cluster', Values: [st.sb.cluster] }] }));
    return (r.Snapshots ?? []).filter((s) => s.State !== 'error').length;
  } finally {
    ec2.destroy();
  }
}

/** Answer each checkpoint wait once, approving, until the run closes; its outcome. */
async function drive(st: Stage, id: string, spec: CrashSpec): Promise<string> {
  const h = st.client.workflow.getHandle(id);
  let decided = 0;
  for (let i = 0; i < 3000; i++) {
    const d = await h.describe().catch(() => null);
    if (d && d.status.name !== 'RUNNING') break;
    if (d) await spec.settle?.(st, id);
    const p = await h.query<Progress>('progress').catch(() => null);
    const waits = p?.steps.filter((s) => s.name.startsWith('checkpoint:')).length ?? 0;
    if (p?.waitingFor && waits > decided) {
      const r = await decide(st.client, id, {
        checkpoint: p.waitingFor,
        decision: 'approve',
        by: 'bob',
        comment: 'crash matrix: approved as a person would',
      }).catch(() => null);
      if (r?.accepted) decided = waits;
    }
    await sleep(300);
  }
  try {
    const r = (await h.result()) as { outcome?: string };
    return r?.outcome ?? 'completed';
  } catch (err) {
    const cause = (err as { cause?: { type?: string; message?: string } }).cause;
    // The type is what is compared; the message goes to the log, so a failed run says why.
    process.stdout.write(`crash sample: ${h.workflowId} failed (${cause?.type ?? 'error'}): ${cause?.message ?? String(err)}\n`);
    return `failed: ${cause?.type ?? 'error'}`;
  }
}

function startWorker(st: Stage): WorkerProcess {
  return startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
}

/** Steps the run's workflow logged as started, in order, once each. */
function startedSteps(w: WorkerProcess[], id: string): string[] {
  const names: string[] = [];
  for (const p of w)
    for (const l of p.lines) {
      const m = l.workflowId === id && typeof l.msg === 'string' ? /^step (.+) started$/.exec(l.msg) : null;
      if (m && !names.includes(m[1])) names.push(m[1]);
    }
  return names;
}

async function prepared(spec: CrashSpec): Promise<{ st: Stage; worker: WorkerProcess; input: Record<string, unknown> }> {
  const st = await startStage({ ...spec.stage, worker: false });
  try {
    const worker = startWorker(st);
    await worker.waitFor((l) => l.msg === 'worker started', 90_000);
    const made = (await spec.setup?.(st)) ?? {};
    return { st, worker, input: spec.input(st, made) };
  } catch (err) {
    await st.down();
    throw err;
  }
}

/** The uncrashed run: its steps and end state. */
export async function referenceRun(spec: CrashSpec): Promise<RunOutcome> {
  const { st, worker, input } = await prepared(spec);
  try {
    const id = `crash-ref-${spec.runbook}-${Date.now()}`;
    await st.client.workflow.start(spec.runbook, { taskQueue: 'switchyard', workflowId: id, args: [input] });
    const result = await drive(st, id, spec);
    await sleep(500);
    return { result, steps: startedSteps([worker], id), state: await (spec.snapshot ?? clusterState)(st, id) };
  } finally {
    await worker.stop().catch(() => undefined);
    await st.down();
  }
}

/** The run with the worker SIGKILLed during (or just after) `step`, finished by a new worker. */
export async function crashRun(spec: CrashSpec, step: string, when: 'during' | 'after', ref: RunOutcome): Promise<CrashOutcome> {
  const t0 = Date.now();
  const { st, worker, input } = await prepared(spec);
  const workers = [worker];
  try {
    const id = `crash-${spec.runbook}-${when}-${step.replace(/[^A-Za-z0-9-]/g, '-')}-${Date.now()}`.slice(0, 200);
    await st.client.workflow.start(spec.runbook, { taskQueue: 'switchyard', workflowId: id, args: [input] });
    const done = drive(st, id, spec);
    const want = (l: Record<string, unknown>) =>
      l.workflowId === id && typeof l.msg === 'string' && (when === 'during' ? l.msg === `step ${step} started` : l.msg.startsWith(`step ${step} done`));
    const reached = await Promise.race([
      worker.waitFor(want, 600_000).then(
        () => true,
        () => false,
      ),
      done.then(() => false),
    ]);
    if (reached) {
      // "While it runs": the workflow logs the step when it schedules it; give the activity a moment to start.
      if (when === 'during') await sleep(150);
      await worker.kill('SIGKILL');
      const next = startWorker(st);
      workers.push(next);
      await next.waitFor((l) => l.msg === 'worker started', 90_000);
    }
    const result = await done;
    await sleep(500);
    const state = await (spec.snapshot ?? clusterState)(st, id);
    const keys = [...new Set([...Object.keys(ref.state), ...Object.keys(state)])].sort();
    const diverged = keys
      .filter((k) => JSON.stringify(ref.state[k]) !== JSON.stringify(state[k]))
      .map((key) => ({ key, reference: ref.state[key], crashed: state[key] }));
    if (result !== ref.result) diverged.unshift({ key: 'result', reference: ref.result, crashed: result });
    return { runbook: spec.runbook, step, when, reached, result, diverged, seconds: Math.round((Date.now() - t0) / 1000) };
  } finally {
    for (const w of workers) await w.stop().catch(() => undefined);
    await st.down();
  }
}

/** A small deterministic generator for the rotating sample (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A setup step: a runbook run to completion (never crashed), its result. */
async function completed(st: Stage, type: string, input: Record<string, unknown>): Promise<Record<string, unknown>> {
  const h = await st.client.workflow.start(type, { taskQueue: 'switchyard', workflowId: `crash-setup-${type}-${Date.now()}`, args: [input] });
  const r = (await h.result()) as Record<string, unknown>;
  if (r.outcome !== undefined && r.outcome !== 'completed') throw new Error(`the setup ${type} ended ${String(r.outcome)}`);
  return { ...r, workflowId: h.workflowId };
}

/** A failover (uncrashed) leaves dc1 a fenced former primary, dc2 the primary. */
const afterFailover = async (st: Stage) => void (await completed(st, 'failover', { cluster: 'demo', requestedBy: 'alice' }));
/** A base backup (uncrashed), its id. */
const afterBackup = async (st: Stage) => ({
  backupId: String((await completed(st, 'backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'] })).backupId),
});

/**
 * The guard's starting state: a failover fenced dc1 and promoted dc2; the guard that failover
 * started is released (the guard under test is started by the harness, watching dc1), and dc1 is
 * then brought back as a writable primary on its old timeline, as a person who removed the fence
 * by hand and started it would (its marker and standby.signal removed, PostgreSQL started).
 */
async function returnedAsPrimary(st: Stage): Promise<Record<string, string>> {
  const r = await completed(st, 'failover', { cluster: 'demo', requestedBy: 'alice' });
  const real = st.client.workflow.getHandle(guardWorkflowId(st.sb.cluster));
  await real.signal(guardReleaseSignal, { node: 'dc1-db', by: 'crash matrix', reason: 'the guard under test watches dc1-db instead' });
  await real.result();
  const dir = st.cluster.postgres.nodes['dc1-db'].dataDir;
  for (const f of ['switchyard-fence.json', 'standby.signal']) rmSync(join(dir, f), { force: true });
  await sandboxUp(st.sb.opts);
  const [row] = await st.nodeQuery('dc1-db', 'SELECT pg_is_in_recovery() AS ro');
  if (row.ro) throw new Error('the setup meant dc1-db to come back writable, but it is in recovery');
  return { fencedBy: String(r.workflowId) };
}

/** Once the guard has fenced dc1 again (or failed to), release it as rejoin would. */
async function releaseOnceFenced(st: Stage, id: string): Promise<void> {
  const h = st.client.workflow.getHandle(id);
  const s = await h.query(guardStatusQuery).catch(() => null);
  if (!s || !s.watching.some((w) => w.node === 'dc1-db')) return;
  if (!s.events.some((e) => e.node === 'dc1-db' && (e.kind === 'fenced-again' || e.kind === 'fence-failed'))) return;
  await h.signal(guardReleaseSignal, { node: 'dc1-db', by: 'crash matrix', reason: 'fenced again; released as rejoin would' });
}

/** The guard's end state: the cluster's, and what its run recorded (each kind of event once). */
async function guardState(st: Stage, id: string): Promise<Record<string, unknown>> {
  const r = (await st.client.workflow
    .getHandle(id)
    .result()
    .catch(() => null)) as { events?: GuardEvent[] } | null;
  return { ...(await clusterState(st)), guardEvents: (r?.events ?? []).map((e) => `${e.kind}:${e.node}`).reverse() };
}

/** The mutating runbooks of the crash matrix, each from a fresh sandbox. */
export const CRASH_SPECS: CrashSpec[] = [
  { runbook: 'failover', input: () => ({ cluster: 'demo', requestedBy: 'alice', reason: 'crash matrix' }) },
  { runbook: 'switchover', input: () => ({ cluster: 'demo', to: 'dc2', requestedBy: 'alice' }) },
  { runbook: 'rejoin', setup: afterFailover, input: () => ({ cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' }) },
  { runbook: 'backup', input: () => ({ cluster: 'demo', requestedBy: 'alice' }) },
  // failback's own steps (its rejoin and switchover children log theirs under their own ids).
  { runbook: 'failback', setup: afterFailover, input: () => ({ cluster: 'demo', requestedBy: 'alice' }) },
  // Onto the live primary: replace-data is approved as a person would.
  { runbook: 'restore', setup: afterBackup, input: (_st, made) => ({ cluster: 'demo', from: made.backupId, target: 'dc1-db', requestedBy: 'alice' }) },
  { runbook: 'drill', setup: afterBackup, input: (_st, made) => ({ cluster: 'demo', from: made.backupId, requestedBy: 'alice' }) },
  // dc1 back as a writable primary while dc2 is primary: the guard fences it again, then is released.
  {
    runbook: 'guard',
    setup: returnedAsPrimary,
    input: (_st, made) => ({
      cluster: 'demo',
      intervalSeconds: 2,
      watch: [{ node: 'dc1-db', newPrimary: 'dc2-db', fencedBy: made.fencedBy, since: new Date().toISOString() }],
    }),
    settle: releaseOnceFenced,
    snapshot: guardState,
  },
];

/**
 * node:test suite: `perRun` of the named runbooks (SWITCHYARD_CRASH_PER_RUN overrides it;
 * SWITCHYARD_CRASH_SAMPLE=all: every one), chosen
 * by the seed (consecutive seeds shift by one, so each runbook comes up in `perRun` of every
 * `runbooks.length` seeds), each with its reference run and one seeded crash.
 */
export function crashSample(runbooks: string[], perRun = 1): void {
  const seed = Number(process.env.SWITCHYARD_CRASH_SEED ?? Math.floor(Date.now() / 1000) % 100_000);
  const all = process.env.SWITCHYARD_CRASH_SAMPLE === 'all';
  const per = process.env.SWITCHYARD_CRASH_PER_RUN ? Number(process.env.SWITCHYARD_CRASH_PER_RUN) : perRun;
  if (!Number.isInteger(per) || per < 1)
    throw new Error(`SWITCHYARD_CRASH_PER_RUN must be a whole number of at least 1, got ${process.env.SWITCHYARD_CRASH_PER_RUN}`);
  const take = all ? runbooks.length : Math.min(per, runbooks.length);
  const chosen = Array.from({ length: take }, (_, k) => runbooks[(seed + k) % runbooks.length]);
  const rest = runbooks.filter((r) => !chosen.includes(r));
  process.stdout.write(
    `crash sample: seed ${seed}: ${chosen.join(', ')}${rest.length ? ` (${rest.join(', ')} on other seeds, or SWITCHYARD_CRASH_SAMPLE=all)` : ''}; ` +
      `rerun with SWITCHYARD_CRASH_SEED=${seed}\n`,
  );
  describe(`crash sample (seed ${seed})`, { concurrency: true }, () => {
    for (const spec of CRASH_SPECS.filter((s) => chosen.includes(s.runbook))) {
      const i = CRASH_SPECS.indexOf(spec);
      it(`${spec.runbook}: a sampled step crashed ends as the uncrashed run`, { timeout: 900_000 }, async () => {
        const ref = await referenceRun(spec);
        const candidates = (spec.steps ?? ((s) => s))(ref.steps).filter((s) => s !== 'layout');
        assert.ok(candidates.length > 0, `the reference ${spec.runbook} logged steps: ${ref.steps.join(', ')}`);
        const rnd = seeded(seed * 31 + i);
        const step = candidates[Math.floor(rnd() * candidates.length)];
        const when = rnd() < 0.5 ? 'during' : 'after';
        const out = await crashRun(spec, step, when, ref);
        process.stdout.write(
          `crash sample: ${spec.runbook}: SIGKILL ${when} ${step}${out.reached ? '' : ' (not reached)'}: ${out.result}; ${out.diverged.length ? `DIVERGED ${JSON.stringify(out.diverged)}` : 'same end state'} (${out.seconds} s; reference ${ref.result}, ${ref.steps.length} steps)\n`,
        );
        assert.deepEqual(out.diverged, [], `${spec.runbook} killed ${when} ${step}: the end state differs from the uncrashed run's`);
      });
    }
  });
}
