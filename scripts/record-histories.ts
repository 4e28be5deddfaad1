/**
 * Records workflow histories for the replay tests (test/replay/replay.test.ts, README beside it).
 *
 *   node --import tsx scripts/record-histories.ts [scenario ...]      (npm run record-histories)
 *   node --import tsx scripts/record-histories.ts --list
 *
 * Each scenario brings up a fresh test sandbox with an in-process worker (test/support/stage.ts),
 * runs real executions on it, checks they ended the way the scenario means, and writes each
 * execution's history, as the Temporal CLI exports it (historyToJSON: test/replay/history-json.ts), to
 * test/replay/histories/<name>.json. The workflow ids go to test/replay/manifest.json (a history
 * does not carry its workflow id; the replay is given the one it ran under). Nothing of a scenario
 * is written unless the whole scenario succeeded, and never a history that contains one of the
 * sandbox's secrets (checked on the JSON and on every payload decoded). Payloads are encrypted, as
 * the sandbox always runs, but with the replay tests' key (test/replay/codec-key.ts) instead of the
 * sandbox's own, so the replay tests can decrypt what is recorded.
 *
 * Re-record only to ADD histories. A replay that fails after a workflow change is the test doing
 * its job: keep the old path with patched()/deprecatePatch() instead of re-recording over it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startPart, stopPart } from '../sandbox';
import { makeLayout } from '../sandbox/layout';
import { decide, decideSigned } from '../src/client/runs';
import { parseSigningKey, signStart } from '../src/client/signing';
import { TASK_QUEUE } from '../src/temporal-target';
import { lockWorkflowId } from '../src/contract/cluster-lock';
import { watchAckSignal, watchStatusQuery, watchStopSignal, watchWorkflowId, type WatchStatus } from '../src/contract/watch';
import type { BackupResult } from '../src/workflows/backup';
import type { FailbackResult } from '../src/workflows/failback';
import type { FailoverResult } from '../src/workflows/failover';
import type { SwitchoverResult } from '../src/workflows/switchover';
import type { ReadinessReport } from '../src/contract/readiness';
import type { Progress } from '../src/contract/messages';
import type { Payload } from '@temporalio/common';
import { historyToJSON } from '../test/replay/history-json';
import { TEST_CODEC_KEY } from '../test/replay/codec-key';
import { startStage, type Stage, type StageOptions } from '../test/support/stage';

const REPO = resolve(__dirname, '..');
export const HISTORIES_DIR = join(REPO, 'test', 'replay', 'histories');
export const MANIFEST = join(REPO, 'test', 'replay', 'manifest.json');

export interface ManifestEntry {
  /** The workflow id the execution ran under (the replay runs it under the same id). */
  workflowId: string;
  workflowType: string;
  /** Its status when recorded: RUNNING for the lock workflow, which lives on idle for a while. */
  status: string;
  scenario: string;
  what: string;
  events: number;
  recordedAt: string;
  sdk: string;
}
export type Manifest = Record<string, ManifestEntry>;

interface Recording {
  name: string;
  json: string;
  entry: ManifestEntry;
}

const SDK = (require('@temporalio/worker/package.json') as { version: string }).version;
const log = (line: string) => process.stderr.write(`[record] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Secrets: whatever the sandbox keeps in its secrets dir must not be in any history

/** The secret strings of a sandbox: each secret file's content, line by line (pgpass: its password field). */
function sandboxSecrets(st: Stage): string[] {
  const layout = makeLayout(st.sb.dir, st.sb.net, st.sb.cluster);
  const files = new Set(Object.values(layout.secrets));
  for (const f of existsSync(layout.secretsDir) ? readdirSync(layout.secretsDir) : []) if (!f.endsWith('.pub')) files.add(join(layout.secretsDir, f));
  const out = new Set<string>();
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const whole = text.trim();
    if (whole && !whole.includes('\n')) out.add(whole);
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('-----')) continue;
      out.add(line);
      if (line.includes(':')) out.add(line.slice(line.lastIndexOf(':') + 1)); // pgpass host:port:db:user:password
    }
  }
  const secrets = [...out].filter((s) => s.length >= 8);
  assert.ok(secrets.length >= 4, `expected the sandbox's secrets in ${layout.secretsDir} (found ${secrets.length}): the secret check would check nothing`);
  return secrets;
}

/** The history JSON plus every payload's data decoded: secrets could hide in base64. */
function readableText(json: string): string {
  const parts = [json];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.data === 'string') parts.push(Buffer.from(o.data, 'base64').toString('utf8'));
      if (o.metadata && typeof o.metadata === 'object')
        for (const m of Object.values(o.metadata as Record<string, unknown>)) if (typeof m === 'string') parts.push(Buffer.from(m, 'base64').toString('utf8'));
      Object.values(o).forEach(walk);
    }
  };
  walk(JSON.parse(json));
  return parts.join('\n');
}

export function assertNoSecrets(name: string, json: string, secrets: string[]): void {
  const text = readableText(json);
  for (const s of secrets) {
    const forms = [s, Buffer.from(s).toString('base64'), encodeURIComponent(s), JSON.stringify(s).slice(1, -1)];
    const hit = forms.find((f) => text.includes(f));
    if (hit !== undefined) throw new Error(`history ${name} contains a sandbox secret (${s.slice(0, 3)}…, ${s.length} chars): not written`);
  }
}

// ---------------------------------------------------------------------------------------------

/** A workflow's history once it is closed, or quiet: no workflow task pending and no new events. */
async function settledHistory(st: Stage, workflowId: string) {
  const h = st.client.workflow.getHandle(workflowId);
  const deadline = Date.now() + 30_000;
  let prev = -1;
  for (;;) {
    const d = await h.describe();
    const history = await h.fetchHistory();
    const events = history.events?.length ?? 0;
    if (d.status.name !== 'RUNNING') return { history, status: d.status.name, type: d.type };
    if (!d.raw.pendingWorkflowTask && events === prev) return { history, status: d.status.name, type: d.type };
    if (Date.now() > deadline) throw new Error(`${workflowId} did not settle: a workflow task is still pending after 30 s`);
    prev = events;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Every payload of a history decrypted with the stage's codec, as text: a secret could hide under the encryption too. */
async function decryptedText(st: Stage, history: unknown): Promise<string> {
  const codec = st.target.dataConverter?.payloadCodecs?.[0];
  if (!codec) return '';
  const payloads: Payload[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.metadata && typeof o.metadata === 'object' && 'data' in o) payloads.push(o as Payload);
      else Object.values(o).forEach(walk);
    }
  };
  walk(history);
  return (await codec.decode(payloads)).map((p) => Buffer.from(p.data ?? []).toString('utf8')).join('\n');
}

async function capture(st: Stage, scenario: string, name: string, workflowId: string, what: string, secrets: string[]): Promise<Recording> {
  const { history, status, type } = await settledHistory(st, workflowId);
  const json = historyToJSON(history) + '\n';
  assertNoSecrets(name, json, secrets);
  assertNoSecrets(name, JSON.stringify({ decrypted: await decryptedText(st, history) }), secrets);
  const events = history.events?.length ?? 0;
  log(`${name}: ${type} ${workflowId} ${status}, ${events} events, ${json.length} bytes`);
  return { name, json, entry: { workflowId, workflowType: type, status, scenario, what, events, recordedAt: new Date().toISOString(), sdk: SDK } };
}

const waitingAt = (cp: string) => (p: Progress) => p.waitingFor === cp;

/** A switchover dc1 → dc2 under `workflowId` that completed, the old primary following (no rejoin). */
async function switchoverToDc2(st: Stage, workflowId: string): Promise<string> {
  const so = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, workflowId);
  const r = (await so.result()) as SwitchoverResult;
  assert.equal(r.outcome, 'completed');
  assert.equal(r.oldPrimary.via, 'follow');
  return so.workflowId;
}

async function readiness(st: Stage, workflowId: string): Promise<void> {
  const r = (await st.client.workflow.execute('readiness', { taskQueue: TASK_QUEUE, workflowId, args: [{ cluster: st.sb.cluster }] })) as ReadinessReport;
  assert.equal(r.ready, true, `readiness ${workflowId}: ${JSON.stringify(r.checks?.filter((c) => !c.ok))}`);
}

interface Scenario {
  name: string;
  about: string;
  stage?: StageOptions;
  run(st: Stage, rec: (name: string, workflowId: string, what: string) => Promise<void>): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'encrypted',
    about:
      'with payload encryption (the replay test key): readiness, dc1 killed, failover waits at old-primary-dead, approved by bob (update decide), completed',
    async run(st, rec) {
      await readiness(st, 'replay-encrypted-readiness');
      await rec('encrypted-readiness', 'replay-encrypted-readiness', 'readiness on a healthy sandbox, payloads encrypted: ready');
      await stopPart(st.sb.opts, 'dc1', 'kill');
      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power' }, 'replay-encrypted-failover-site-down');
      await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
      const answer = await decide(st.client, h.workflowId, {
        checkpoint: 'old-primary-dead',
        decision: 'approve',
        by: 'bob',
        comment: 'dc1 is off at the PDU',
      });
      assert.equal(answer.accepted, true);
      await st.waitProgress(h.workflowId, (p) => p.waitingFor === 'accept-data-loss' || p.waitingFor === null, 'past old-primary-dead');
      const p = await h.query<Progress>('progress');
      if (p.waitingFor === 'accept-data-loss') await decide(st.client, h.workflowId, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' });
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      await rec(
        'encrypted-failover-site-down',
        h.workflowId,
        'failover with dc1 killed, payloads encrypted: old-primary-dead approved by bob through the update, completed',
      );
    },
  },
  {
    name: 'healthy',
    about: 'readiness, a dry run and a fenced failover (dc1 reachable, no checkpoint) on one healthy sandbox, in that order',
    async run(st, rec) {
      await readiness(st, 'replay-readiness');
      await rec('readiness', 'replay-readiness', 'readiness on a healthy sandbox: ready');

      const dry = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', dryRun: true }, 'replay-failover-dry-run');
      const plan = (await dry.result()) as FailoverResult;
      assert.equal(plan.outcome, 'planned');
      await rec('failover-dry-run', dry.workflowId, 'failover dry run: read-only checks and the plan, no lock');

      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failover-fenced');
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.equal(r.fenced, true);
      assert.deepEqual(r.checkpoints, []);
      await rec('failover-fenced', h.workflowId, 'failover with dc1 reachable: fenced, no checkpoint, completed');
      await rec('cluster-lock-fenced', lockWorkflowId('demo'), 'the cluster lock after the fenced failover: acquired and released, idle (running)');
    },
  },
  {
    name: 'site-down',
    about: 'readiness, dc1 killed, failover waits at old-primary-dead; a refused signal (two-person rule), then approved by signal',
    stage: { edit: (c) => ((c.checkpoints as Record<string, unknown>).twoPerson = true) },
    async run(st, rec) {
      await readiness(st, 'replay-readiness-before-outage');
      await rec('readiness-before-outage', 'replay-readiness-before-outage', 'readiness before dc1 is killed (gives the failover its last known position)');
      await stopPart(st.sb.opts, 'dc1', 'kill');

      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power' }, 'replay-failover-site-down');
      await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
      // Refused by the handler (alice started the run; two-person rule): recorded, changes nothing.
      await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' });
      await st.waitProgress(h.workflowId, (p) => p.steps.some((s) => s.name === 'decision:old-primary-dead'), 'the refused signal in the step log');
      await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.equal(r.fenced, false);
      assert.deepEqual(
        r.checkpoints.map((c) => [c.checkpoint, c.decision, c.by]),
        [['old-primary-dead', 'approve', 'bob']],
      );
      await rec(
        'failover-site-down-approved',
        h.workflowId,
        'failover with dc1 killed: old-primary-dead, a refused signal from alice, approved by signal from bob, completed',
      );
      await rec('cluster-lock-site-down', lockWorkflowId('demo'), 'the cluster lock after the approved failover (running)');
    },
  },
  {
    name: 'signed-approvals',
    about:
      "dc1 killed; a failover started with the console's start proof waits at old-primary-dead under verified decisions and two approvals: an unsigned signal refused, bob and carol approve through the console's signatures",
    stage: {
      edit: (c) =>
        void (c.checkpoints = {
          approvers: ['@dba', 'carol'],
          twoPerson: true,
          verifiedDecisions: 'required',
          approvals: { 'old-primary-dead': { approvals: 2 } },
        }),
    },
    async run(st, rec) {
      const signer = {
        key: parseSigningKey(readFileSync(makeLayout(st.sb.dir, st.sb.net, st.sb.cluster).secrets.consoleKey, 'utf8'), 'console key'),
        name: 'console',
      };
      await readiness(st, 'replay-readiness-before-signed');
      await stopPart(st.sb.opts, 'dc1', 'kill');
      const id = 'replay-failover-signed-approvals';
      const input = signStart(
        { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power' },
        { workflowId: id, workflowType: 'failover' },
        signer.key,
        signer.name,
      );
      const h = await st.start('failover', input, id);
      await st.waitProgress(id, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
      // Unsigned: refused by the handler under verified decisions, recorded, changes nothing.
      await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
      await st.waitProgress(id, (p) => p.steps.some((s) => s.name === 'decision:old-primary-dead'), 'the refused unsigned signal');
      for (const by of ['bob', 'carol']) {
        const a = await decideSigned(st.client, id, { checkpoint: 'old-primary-dead', decision: 'approve', by, comment: 'powered off' }, signer);
        assert.ok(a.accepted, a.accepted ? '' : a.reason);
      }
      // The last reading of dc1 may be older than the freshness bound by now: then carol accepts the lower bound.
      for (;;) {
        const p = await h.query<Progress>('progress');
        if (p.waitingFor === 'accept-data-loss') {
          const a = await decideSigned(st.client, id, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'carol' }, signer);
          assert.ok(a.accepted, a.accepted ? '' : a.reason);
        }
        if ((await h.describe()).status.name !== 'RUNNING') break;
        await new Promise((r) => setTimeout(r, 300));
      }
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.deepEqual(
        r.checkpoints[0].approvals?.map((a) => [a.by, a.verifiedBy]),
        [
          ['bob', 'console'],
          ['carol', 'console'],
        ],
      );
      await rec(
        'failover-signed-approvals',
        id,
        'failover started with a start proof; old-primary-dead under verified decisions: unsigned refused, two signed approvals, completed',
      );
    },
  },
  {
    name: 'watch',
    about: 'a watch probing every second; dc1 killed: it stages a failover, approved; the watch sees dc2 as primary and is stopped',
    async run(st, rec) {
      await readiness(st, 'replay-readiness-before-watch');
      const w = await st.client.workflow.start('watch', {
        taskQueue: TASK_QUEUE,
        workflowId: watchWorkflowId('demo'),
        args: [{ cluster: 'demo', everySeconds: 1, failures: 3, requestedBy: 'alice' }],
      });
      const status = () => w.query(watchStatusQuery);
      const until = async (pred: (s: WatchStatus) => boolean, what: string) => {
        for (let i = 0; i < 240; i++) {
          const s = await status();
          if (pred(s)) return s;
          await new Promise((r) => setTimeout(r, 250));
        }
        throw new Error(`the watch never showed ${what}`);
      };
      await until((s) => s.primary === 'dc1-db', 'dc1-db as primary');
      await stopPart(st.sb.opts, 'dc1', 'kill');
      const id = (await until((s) => s.staged !== null, 'a staged failover')).staged!.workflowId;
      await st.waitProgress(id, waitingAt('old-primary-dead'), 'the staged failover at old-primary-dead');
      await decide(st.client, id, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
      const h = st.client.workflow.getHandle(id);
      while ((await h.describe()).status.name === 'RUNNING') {
        if ((await h.query<Progress>('progress')).waitingFor === 'accept-data-loss')
          await decide(st.client, id, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' });
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(((await h.result()) as FailoverResult).outcome, 'completed');
      await until((s) => s.primary === 'dc2-db', 'dc2-db as primary');
      await w.signal(watchStopSignal, { by: 'alice' });
      await w.result();
      await rec(
        'watch-staged',
        watchWorkflowId('demo'),
        'a watch: dc1 killed, a failover staged after three failed probes and approved, dc2 seen as primary, stopped',
      );
    },
  },
  {
    name: 'watch-automatic',
    about: 'automatic mode: dc1 PostgreSQL stopped (SSH up), the watch stages an automatic failover that fences and promotes alone; acknowledged; stopped',
    stage: { edit: (c) => void (c.failover = { ...((c.failover as object) ?? {}), automatic: true }) },
    async run(st, rec) {
      const w = await st.client.workflow.start('watch', {
        taskQueue: TASK_QUEUE,
        workflowId: watchWorkflowId('demo'),
        args: [{ cluster: 'demo', everySeconds: 1, failures: 2, requestedBy: 'alice' }],
      });
      const until = async (pred: (s: WatchStatus) => boolean, what: string) => {
        for (let i = 0; i < 240; i++) {
          const s = await w.query(watchStatusQuery);
          if (pred(s)) return s;
          await new Promise((r) => setTimeout(r, 250));
        }
        throw new Error(`the watch never showed ${what}`);
      };
      await until((s) => s.primary === 'dc1-db' && s.verdict === 'ok', 'dc1-db as primary');
      await stopPart(st.sb.opts, 'dc1-db/postgres', 'stop');
      const id = (await until((s) => s.staged !== null, 'a staged failover')).staged!.workflowId;
      const r = (await st.client.workflow.getHandle(id).result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.deepEqual(r.checkpoints, [], 'promoted without a person');
      await until((s) => s.primary === 'dc2-db', 'dc2-db as primary');
      await w.signal(watchAckSignal, { by: 'carol' });
      await until((s) => s.automatic.antiFlap.ackedBy === 'carol', 'the acknowledgement');
      await w.signal(watchStopSignal, { by: 'alice' });
      await w.result();
      await rec('watch-automatic', watchWorkflowId('demo'), 'the watch (vantage points, incidents): an automatic failover staged, acknowledged, stopped');
      await rec('failover-automatic', id, 'a failover staged by the watch in automatic mode: dc1 fenced over SSH, exact loss 0, promoted without a person');
    },
  },
  {
    name: 'data-loss-rejected',
    about: 'standby cut off from the WAL while writes continue; failover stops at accept-data-loss, rejected by the update decide, undone',
    async run(st, rec) {
      await st.standbyFallsBehind('dc2-db', 500);

      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failover-data-loss-rejected');
      await st.waitProgress(h.workflowId, waitingAt('accept-data-loss'), 'the accept-data-loss checkpoint');
      const answer = await decide(st.client, h.workflowId, { checkpoint: 'accept-data-loss', decision: 'reject', by: 'bob', comment: 'too much to lose' });
      assert.equal(answer.accepted, true);
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'aborted');
      assert.match(r.abortedBecause ?? '', /accept-data-loss rejected by bob/);
      await rec(
        'failover-data-loss-rejected',
        h.workflowId,
        'failover with the standby behind: fenced, accept-data-loss rejected by the update decide, undone, aborted',
      );
      await rec('cluster-lock-data-loss-rejected', lockWorkflowId('demo'), 'the cluster lock after the aborted failover (running)');
    },
  },
  {
    name: 'planned',
    about: 'switchover dc1 → dc2; failback while dc1 streams (no rejoin); then dc1 killed, failover approved, failback with a rejoin (pg_rewind) child',
    async run(st, rec) {
      const so = await switchoverToDc2(st, 'replay-switchover');
      await rec('switchover', so, 'switchover dc1 → dc2: clean stop, replay to the shutdown checkpoint, promote, old primary follows, write probes');

      const fb = await st.start('failback', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failback-streaming');
      const b = (await fb.result()) as FailbackResult;
      assert.equal(b.outcome, 'completed');
      assert.equal(b.rejoin, null);
      await rec('failback-streaming', fb.workflowId, 'failback when dc1 already streams: no rejoin, the switchover child back to dc1');
      await rec('failback-streaming-switchover', `${fb.workflowId}-switchover`, "the switchover child of that failback (under the parent's lock)");

      await readiness(st, 'replay-readiness-planned');
      await stopPart(st.sb.opts, 'dc1', 'kill');
      const fo = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failover-for-rejoin');
      await st.waitProgress(fo.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
      await decide(st.client, fo.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
      assert.equal(((await fo.result()) as FailoverResult).outcome, 'completed');
      for (const part of ['dc1-db/sshd', 'dc1-app/sshd', 'dc1-app/app']) await startPart(st.sb.opts, part);
      const fb2 = await st.start('failback', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failback-rejoin');
      const b2 = (await fb2.result()) as FailbackResult;
      assert.equal(b2.outcome, 'completed');
      assert.equal(b2.rejoin?.method, 'rewind');
      await rec('failback-rejoin', fb2.workflowId, 'failback after a site-down failover: rejoin child (pg_rewind after a crash), then switchover child');
      await rec('failback-rejoin-rejoin', `${fb2.workflowId}-rejoin`, 'the rejoin child of that failback: rewind, config files, standby settings, catch-up');
      await rec('failback-rejoin-switchover', `${fb2.workflowId}-switchover`, 'the switchover child of that failback');
    },
  },
  {
    name: 'traffic-first',
    about:
      "switchover dc1 → dc2 and failback to dc1 after the 'switchover-traffic-first' patch: traffic, services and maintenance before the old primary follows",
    async run(st, rec) {
      const so = await switchoverToDc2(st, 'replay-switchover-traffic-first');
      await rec('switchover-traffic-first', so, "switchover dc1 → dc2 with the 'switchover-traffic-first' patch: traffic moves before the old primary follows");

      const fb = await st.start('failback', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failback-traffic-first');
      const b = (await fb.result()) as FailbackResult;
      assert.equal(b.outcome, 'completed');
      await rec('failback-traffic-first', fb.workflowId, "failback when dc1 streams, its switchover child patched 'switchover-traffic-first'");
      await rec('failback-traffic-first-switchover', `${fb.workflowId}-switchover`, 'the patched switchover child of that failback');
    },
  },
  {
    name: 'spread-parallel',
    about:
      "after the 'switchover-parallel' and 'watch-spread' patches: a switchover dc1 → dc2 whose hooks and traffic drivers run at once and whose old primary follows while the services start; a watch every second that spreads itself once, reads its hosts, traffic, fences and backups on its first probe, and is stopped",
    async run(st, rec) {
      const so = await switchoverToDc2(st, 'replay-switchover-parallel');
      await rec('switchover-parallel', so, "switchover dc1 → dc2 with the 'switchover-parallel' patch: hooks and traffic at once, follow beside the services");

      const w = await st.client.workflow.start('watch', {
        taskQueue: TASK_QUEUE,
        workflowId: watchWorkflowId('demo'),
        args: [{ cluster: 'demo', everySeconds: 1, failures: 3, requestedBy: 'alice' }],
      });
      for (let i = 0; ; i++) {
        const s = await w.query(watchStatusQuery);
        if (s.primary === 'dc2-db' && s.ticks >= 4) break;
        if (i > 240) throw new Error('the watch never probed dc2-db as primary four times');
        await new Promise((res) => setTimeout(res, 250));
      }
      await w.signal(watchStopSignal, { by: 'alice' });
      await w.result();
      await rec(
        'watch-spread',
        watchWorkflowId('demo'),
        "a watch with the 'watch-spread' patch: the one-time spread after its first probe, four probes, stopped",
      );
    },
  },
  {
    name: 'backups',
    about:
      'readiness with backups looked at, a backup with a drill child, retention dry run, restore of the base backup onto the primary (replace-data approved), a snapshot restore rejected at replace-instance',
    async run(st, rec) {
      const b = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg', 'ebs'], drill: true }, 'replay-backup');
      const r = (await b.result()) as BackupResult;
      assert.equal(r.drill?.ok, true);
      await rec('backup', b.workflowId, 'backup of pg and ebs from the standby, retention, then a drill child that proved it');
      await rec('backup-drill', `${b.workflowId}-drill`, 'the drill child of that backup: scratch restore, verification, RTO/RPO');
      await readiness(st, 'replay-readiness-backups');
      await rec('readiness-backups', 'replay-readiness-backups', "readiness after the 'readiness-backup-age' patch: the newest proven backup looked at");

      const dry = await st.start('backupRetention', { cluster: 'demo', requestedBy: 'alice', dryRun: true }, 'replay-retention-dry-run');
      await dry.result();
      await rec('retention-dry-run', dry.workflowId, 'retention alone, dry run');

      const rs = await st.start('restore', { cluster: 'demo', from: 'replay-backup', target: 'dc1-db', requestedBy: 'alice' }, 'replay-restore-pg');
      await st.waitProgress(rs.workflowId, waitingAt('replace-data'), 'the replace-data checkpoint');
      await decide(st.client, rs.workflowId, { checkpoint: 'replace-data', decision: 'approve', by: 'bob' });
      assert.equal(((await rs.result()) as { outcome: string }).outcome, 'completed');
      await rec('restore-pg', rs.workflowId, 'restore of the base backup onto the primary: staged, replace-data approved, swapped, started, verified');

      const re = await st.start(
        'restore',
        { cluster: 'demo', from: 'replay-backup', target: 'dc2-db', kind: 'ebs', requestedBy: 'alice' },
        'replay-restore-ebs-rejected',
      );
      await st.waitProgress(re.workflowId, waitingAt('replace-instance'), 'the replace-instance checkpoint');
      await decide(st.client, re.workflowId, { checkpoint: 'replace-instance', decision: 'reject', by: 'bob' });
      assert.equal(((await re.result()) as { outcome: string }).outcome, 'aborted');
      await rec(
        'restore-ebs-rejected',
        re.workflowId,
        'restore from snapshots while the original holds the address: replace-instance rejected, nothing changed',
      );
    },
  },
  {
    name: 'restore-rejected',
    about: 'a base backup, then its restore onto the primary rejected at replace-data',
    async run(st, rec) {
      const b = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'] }, 'replay-backup-for-rejected-restore');
      const { backupId } = (await b.result()) as BackupResult;
      const rs = await st.start('restore', { cluster: 'demo', from: backupId, target: 'dc1-db', requestedBy: 'alice' }, 'replay-restore-pg-rejected');
      await st.waitProgress(rs.workflowId, waitingAt('replace-data'), 'the replace-data checkpoint');
      await decide(st.client, rs.workflowId, { checkpoint: 'replace-data', decision: 'reject', by: 'bob' });
      assert.equal(((await rs.result()) as { outcome: string }).outcome, 'aborted');
      await rec(
        'restore-pg-rejected',
        rs.workflowId,
        'restore of a base backup onto the primary: staged, replace-data rejected, the staged copy removed (patch restore-discard-rejected-stage), nothing replaced',
      );
    },
  },
  {
    name: 'lock-verify-parent',
    about: "switchover dc1 → dc2, then failback to dc1 after the 'lock-verify-parent' patch: its switchover child checks that the failback holds the lock",
    async run(st, rec) {
      const so = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, 'replay-switchover-for-verified-parent');
      assert.equal(((await so.result()) as SwitchoverResult).outcome, 'completed');
      const fb = await st.start('failback', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failback-verified-parent');
      const b = (await fb.result()) as FailbackResult;
      assert.equal(b.outcome, 'completed');
      const lock = (await st.client.workflow.getHandle(`${fb.workflowId}-switchover`).query<Progress>('progress')).steps.find((s) => s.name === 'lock');
      assert.equal(lock?.state, 'done', `the child's lock check: ${JSON.stringify(lock)}`);
      await rec('failback-verified-parent', fb.workflowId, "failback when dc1 streams after the 'lock-verify-parent' patch: the switchover child back to dc1");
      await rec(
        'failback-verified-parent-switchover',
        `${fb.workflowId}-switchover`,
        "the switchover child of that failback: lockCheckParent finds the failback holding the lock (patch 'lock-verify-parent')",
      );
      await rec(
        'cluster-lock-verified-parent',
        lockWorkflowId('demo'),
        'the cluster lock after that switchover and failback: holders recorded with firstExecutionRunId (running)',
      );
    },
  },
  {
    name: 'restore-rechecked',
    about:
      "a base backup; a restore onto the primary approved while dc2 is frozen: roles read again under the lock, dc2 unknown, refused (patch 'restore-roles-under-lock'); then one approved that completes",
    async run(st, rec) {
      const b = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'] }, 'replay-backup-for-rechecked-restore');
      const { backupId } = (await b.result()) as BackupResult;
      const no = await st.start('restore', { cluster: 'demo', from: backupId, target: 'dc1-db', requestedBy: 'alice' }, 'replay-restore-pg-unknown-role');
      await st.waitProgress(no.workflowId, waitingAt('replace-data'), 'the replace-data checkpoint');
      await stopPart(st.sb.opts, 'dc2-db/postgres', 'pause');
      try {
        await decide(st.client, no.workflowId, { checkpoint: 'replace-data', decision: 'approve', by: 'bob' });
        await assert.rejects(no.result(), /./);
      } finally {
        await startPart(st.sb.opts, 'dc2-db/postgres');
      }
      await rec(
        'restore-pg-unknown-role',
        no.workflowId,
        "restore onto the primary, replace-data approved while dc2 is frozen: read again under the lock, dc2's role unknown, refused before anything stopped, the staged copy removed (patch restore-roles-under-lock)",
      );
      const rs = await st.start('restore', { cluster: 'demo', from: backupId, target: 'dc1-db', requestedBy: 'alice' }, 'replay-restore-pg-rechecked');
      await st.waitProgress(rs.workflowId, waitingAt('replace-data'), 'the replace-data checkpoint');
      await decide(st.client, rs.workflowId, { checkpoint: 'replace-data', decision: 'approve', by: 'bob' });
      assert.equal(((await rs.result()) as { outcome: string }).outcome, 'completed');
      await rec(
        'restore-pg-rechecked',
        rs.workflowId,
        'restore onto the primary: staged, replace-data approved, roles read again under the lock (patch restore-roles-under-lock), swapped, started, verified',
      );
    },
  },
  {
    name: 'fence-lasts',
    about:
      "after the 'failover-fence-lasts' patch: a fenced failover (standby.signal and marker, the guard started), readiness naming the fenced former primary, a rejoin that clears the marker and ends the guard's watch ('rejoin-clears-fence'), the guard ending",
    async run(st, rec) {
      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failover-fenced-marked');
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.equal(r.fenced, true);
      await rec(
        'failover-fenced-marked',
        h.workflowId,
        'failover with dc1 reachable after the fence-lasts patch: fenced and marked, re-checked before promotion, the guard started, completed',
      );
      const ready = (await st.client.workflow.execute('readiness', {
        taskQueue: TASK_QUEUE,
        workflowId: 'replay-readiness-fenced',
        args: [{ cluster: st.sb.cluster }],
      })) as ReadinessReport;
      assert.equal(ready.ready, false);
      assert.ok(
        ready.checks.some((c) => c.name === 'fence:dc1-db' && !c.ok),
        JSON.stringify(ready.checks.filter((c) => !c.ok)),
      );
      await rec(
        'readiness-fenced',
        'replay-readiness-fenced',
        'readiness after that failover (patch readiness-fence): dc1-db is a fenced former primary, not ready, rejoin named',
      );
      const rj = await st.start('rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' }, 'replay-rejoin-clears-fence');
      assert.equal(((await rj.result()) as { outcome: string }).outcome, 'completed');
      await rec(
        'rejoin-clears-fence',
        rj.workflowId,
        'rejoin of the fenced dc1 (patch rejoin-clears-fence): rewound, streaming, the marker cleared and the guard told',
      );
      const guard = st.client.workflow.getHandle('switchyard-guard-demo');
      await guard.result();
      await rec('guard-released', 'switchyard-guard-demo', 'the guard the failover started: watched dc1-db until the rejoin released it, then ended');
    },
  },
  {
    name: 'site-down-gated',
    about:
      "after the 'failover-fence-lasts' patch: readiness, dc1 killed, failover approved at old-primary-dead, checked again, asked at accept-data-loss (the readiness reading is older than the freshness), approved",
    stage: { edit: (c) => void (c.failover = { ...((c.failover as object) ?? {}), dataLossFreshness: '1s' }) },
    async run(st, rec) {
      await readiness(st, 'replay-readiness-before-gated-outage');
      await stopPart(st.sb.opts, 'dc1', 'kill');
      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power' }, 'replay-failover-site-down-gated');
      await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
      await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
      await st.waitProgress(h.workflowId, waitingAt('accept-data-loss'), 'the accept-data-loss checkpoint');
      assert.equal((await decide(st.client, h.workflowId, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' })).accepted, true);
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.deepEqual(
        r.checkpoints.map((c) => c.checkpoint),
        ['old-primary-dead', 'accept-data-loss'],
      );
      await rec(
        'failover-site-down-gated',
        h.workflowId,
        'failover with dc1 killed after the fence-lasts patch: old-primary-dead approved and checked again, accept-data-loss asked for a stale lower bound and approved, completed',
      );
    },
  },
  {
    name: 'parallel-forward',
    about:
      "after the 'failover-parallel-forward' patch: a fenced failover (dc1 reachable) that moves the front first, then runs the hook, the services and the other traffic drivers side by side",
    async run(st, rec) {
      const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, 'replay-failover-parallel-forward');
      const r = (await h.result()) as FailoverResult;
      assert.equal(r.outcome, 'completed');
      assert.equal(r.fenced, true);
      assert.ok(
        r.steps.some((x) => x.name === 'front-verified' && x.state === 'done'),
        r.steps.map((x) => x.name).join(', '),
      );
      await rec(
        'failover-parallel-forward',
        h.workflowId,
        'failover with dc1 reachable after the parallel-forward patch: fenced, promoted, the front moved first, then hook, services and the other drivers side by side, completed',
      );
    },
  },
];

function readManifest(): Manifest {
  return existsSync(MANIFEST) ? (JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest) : {};
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes('--list') || argv.includes('--help')) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name}: ${s.about}\n`);
    return;
  }
  const unknown = argv.filter((a) => !SCENARIOS.some((s) => s.name === a));
  if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  const chosen = argv.length ? SCENARIOS.filter((s) => argv.includes(s.name)) : SCENARIOS;
  mkdirSync(HISTORIES_DIR, { recursive: true });

  for (const scenario of chosen) {
    log(`scenario ${scenario.name}: starting a sandbox`);
    const started = Date.now();
    const st = await startStage({ ...scenario.stage, codecKeys: [TEST_CODEC_KEY] });
    const recordings: Recording[] = [];
    try {
      const secrets = sandboxSecrets(st);
      log(`scenario ${scenario.name}: histories are checked against ${secrets.length} secret strings from the sandbox's secrets dir`);
      await scenario.run(st, async (name, workflowId, what) => {
        recordings.push(await capture(st, scenario.name, name, workflowId, what, secrets));
      });
    } finally {
      await st.down();
    }
    // Written only once the whole scenario succeeded.
    const manifest = readManifest();
    for (const r of recordings) {
      writeFileSync(join(HISTORIES_DIR, `${r.name}.json`), r.json);
      manifest[r.name] = r.entry;
    }
    const sorted = Object.fromEntries(Object.entries(manifest).sort(([a], [b]) => a.localeCompare(b)));
    writeFileSync(MANIFEST, JSON.stringify(sorted, null, 2) + '\n');
    log(`scenario ${scenario.name}: ${recordings.length} histories written in ${Math.round((Date.now() - started) / 1000)} s`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`record-histories: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
