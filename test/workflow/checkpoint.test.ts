/**
 * The checkpoint primitive on a real Temporal dev server: decisions by signal and by update, the
 * validator's refusals (each with its reason, each changing nothing), the two-person rule, the
 * reminder and the deadline's safe outcome, and what the step log and search attributes show.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { CheckpointOutcome, CheckpointPolicy } from '../../src/workflows/lib/checkpoint';
import { SA_WAITING_FOR } from '../../src/workflows/lib/search-attributes';
import type { DecideResult, Decision, Progress } from '../../src/contract/messages';
import { startTestTemporal } from '../support/temporal';
import { decideSigned } from '../../src/client/runs';
import { generateSigningKey, parseSigningKey, signDecision, signStart } from '../../src/client/signing';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const policy: CheckpointPolicy = { approvers: ['alice', 'bob', 'carol'], twoPerson: true, remindAfterSeconds: 3600, deadlineSeconds: 7200 };

describe('checkpoints (real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `checkpoint-${randomUUID()}`;
  const notified: { event: string; text: string }[] = [];

  before(async () => {
    env = await startTestTemporal();
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/checkpoint-workflows'), logger: new DefaultLogger('WARN') });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: {
        async notifyProbe(i: { event: string; text: string }) {
          notified.push(i);
        },
      },
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  async function start(p: Partial<CheckpointPolicy> = {}, safety = true, startedBy = 'alice'): Promise<WorkflowHandle> {
    const h = await env.client.workflow.start('checkpointProbe', {
      taskQueue,
      workflowId: `cp-${randomUUID()}`,
      args: [{ startedBy, policy: { ...policy, ...p }, safety }],
    });
    // until the run is waiting
    for (let i = 0; i < 100; i++) {
      if ((await h.query<Progress>('progress')).waitingFor) return h;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the run never reached its checkpoint');
  }
  const decide = (h: WorkflowHandle, d: Partial<Decision>) => h.executeUpdate<DecideResult, [Decision]>('decide', { args: [d as Decision] });
  const refusal = async (h: WorkflowHandle, d: Partial<Decision>) => {
    const err = await decide(h, d).then(
      () => assert.fail('the update was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowUpdateFailedError, String(err));
    return (err.cause as Error).message;
  };

  it('waits visibly, and an approval by signal lets it go on with who, when and why recorded', async () => {
    const h = await start();
    const p = await h.query<Progress>('progress');
    assert.equal(p.waitingFor, 'old-primary-dead');
    assert.deepEqual(
      p.steps.map((s) => [s.name, s.state]),
      [['checkpoint:old-primary-dead', 'waiting']],
    );
    assert.match(p.steps[0].detail, /ensure that the initial machine actually is dead/);
    assert.equal((await h.describe()).typedSearchAttributes.get(SA_WAITING_FOR), 'old-primary-dead');
    assert.ok(notified.some((n) => n.event === 'checkpoint' && /waiting at "old-primary-dead"/.test(n.text)));

    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob', comment: 'console shows it powered off' });
    const o = (await h.result()) as CheckpointOutcome;
    assert.equal(o.decision, 'approve');
    assert.equal(o.by, 'bob');
    assert.equal(o.comment, 'console shows it powered off');
    const after = await h.query<Progress>('progress');
    assert.equal(after.waitingFor, null);
    assert.deepEqual(
      after.steps.map((s) => [s.name, s.state, s.detail]),
      [['checkpoint:old-primary-dead', 'done', 'approved by bob (unverified): console shows it powered off']],
    );
    assert.equal((await h.describe()).typedSearchAttributes.get(SA_WAITING_FOR), undefined);
  });

  it('the update refuses a wrong, unknown or not-current checkpoint, a missing name, a non-approver and self-approval — each with its reason', async () => {
    const h = await start();
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-ded', decision: 'approve', by: 'bob' }),
      'unknown checkpoint "old-primary-ded"; this runbook\'s checkpoints are "old-primary-dead", "accept-data-loss"',
    );
    assert.equal(
      await refusal(h, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' }),
      'the run is not waiting at "accept-data-loss" (it waits at "old-primary-dead")',
    );
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: '  ' }),
      'a decision needs the name of the person deciding ("by")',
    );
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'mallory' }),
      '"mallory" may not decide at "old-primary-dead"; approvers: alice, bob, carol',
    );
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' }),
      '"alice" started this run and may not approve its safety checkpoint "old-primary-dead" (two-person rule): another approver must',
    );
    assert.match(await refusal(h, { checkpoint: 'old-primary-dead', decision: 'maybe' as 'approve', by: 'bob' }), /^decision must be "approve" or "reject"/);
    // none of that changed anything: still waiting, nothing decided
    assert.equal((await h.query<Progress>('progress')).waitingFor, 'old-primary-dead');
    // the starter may still reject (the safe direction)
    assert.deepEqual(await decide(h, { checkpoint: 'old-primary-dead', decision: 'reject', by: 'alice', comment: 'not sure it is dead' }), {
      accepted: true,
      checkpoint: 'old-primary-dead',
      decision: 'reject',
      approvals: 0,
      required: 1,
      decided: true,
    });
    const o = (await h.result()) as CheckpointOutcome;
    assert.deepEqual([o.decision, o.by], ['reject', 'alice']);
    // refused updates never reached history
    const history = await h.fetchHistory();
    const updates = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
    assert.equal(updates.length, 1);
  });

  it('a refused signal changes nothing and is recorded in the step log with its reason', async () => {
    const h = await start();
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' });
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: '' } as Decision);
    let p: Progress;
    for (;;) {
      p = await h.query<Progress>('progress');
      if (p.steps.length >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(p.waitingFor, 'old-primary-dead');
    const refused = p.steps.filter((s) => s.name === 'decision:old-primary-dead');
    assert.deepEqual(
      refused.map((s) => s.state),
      ['failed', 'failed'],
    );
    assert.match(refused[0].detail, /^refused approve from alice: "alice" started this run and may not approve its safety checkpoint/);
    assert.match(refused[1].detail, /^refused approve from nobody: a decision needs the name/);
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'carol' });
    assert.equal(((await h.result()) as CheckpointOutcome).by, 'carol');
  });

  it('the starter may approve a checkpoint that is not a safety one, and anyone may when no approvers are listed', async () => {
    const h = await start({ approvers: [] }, false);
    await decide(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' });
    assert.equal(((await h.result()) as CheckpointOutcome).decision, 'approve');
  });

  it('reminds, then past the deadline ends with the safe outcome', async () => {
    const before = notified.length;
    // Reminders every second, the deadline at 6 s: room for a second reminder even when a loaded
    // machine fires the first timer seconds late (at 1 s and 3 s it once fired at 2.5 s).
    const h = await start({ remindAfterSeconds: 1, deadlineSeconds: 6 });
    const o = (await h.result()) as CheckpointOutcome;
    assert.equal(o.decision, 'deadline');
    assert.equal(o.by, null);
    assert.ok(o.waitedSeconds >= 6);
    const p = await h.query<Progress>('progress');
    assert.ok(p.steps.filter((s) => s.name === 'reminder:old-primary-dead').length >= 2, JSON.stringify(p.steps));
    assert.equal(p.steps.find((s) => s.name === 'checkpoint:old-primary-dead')?.detail, 'no decision within the deadline (6 s)');
    const mine = notified.slice(before).map((n) => n.event);
    assert.ok(mine.includes('checkpoint-reminder') && mine.includes('checkpoint-deadline'), mine.join(', '));
    assert.equal(p.waitingFor, null);
  });

  /** The switchyard CLI in its own process, as an operator runs it. */
  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [join(__dirname, '../../bin/switchyard.js'), '--address', env.address, ...args], (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  it('switchyard approve|reject and status: refusals with their reason, acceptance, and --wait following the run', async () => {
    const h = await start();
    const refused = await cli('approve', h.workflowId, 'old-primary-dead', '--as', 'alice');
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stdout,
      'refused: "alice" started this run and may not approve its safety checkpoint "old-primary-dead" (two-person rule): another approver must\n',
    );
    const status = await cli('status', h.workflowId, '--json');
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { status: string; progress: Progress };
    assert.equal(s.status, 'RUNNING');
    assert.equal(s.progress.waitingFor, 'old-primary-dead');
    const waiting = cli('status', h.workflowId, '--wait');
    const ok = await cli('approve', h.workflowId, 'old-primary-dead', '--as', 'bob', '--comment', 'iLO says off');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'accepted: approve at "old-primary-dead" by bob\n');
    const followed = await waiting;
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stdout, /done {4}checkpoint:old-primary-dead .*approved by bob \(unverified\): iLO says off/);
    assert.match(followed.stdout, new RegExp(`${h.workflowId}: COMPLETED\\n$`));
    const missing = await cli('reject', h.workflowId, 'old-primary-dead');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /required option '--as <name>' not specified/);
  });
  it('M-of-N: waits for two distinct eligible approvers, names compared case-insensitively, each approval shown as it comes', async () => {
    const h = await start({ approvals: { 'old-primary-dead': { approvals: 2, approvers: ['bob', 'carol', 'dave'] } } }, true, 'Alice');
    const first = await decide(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'Bob', comment: 'ping fails' });
    assert.deepEqual(first, { accepted: true, checkpoint: 'old-primary-dead', decision: 'approve', approvals: 1, required: 2, decided: false });
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'BOB ' }),
      '"bob" already approved "old-primary-dead" (1 of 2): another approver must',
    );
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' }),
      '"alice" may not decide at "old-primary-dead"; approvers: bob, carol, dave',
    );
    const p = await h.query<Progress>('progress');
    assert.equal(p.waitingFor, 'old-primary-dead');
    assert.equal(p.waiting?.required, 2);
    assert.deepEqual(p.waiting?.eligible, ['bob', 'carol', 'dave']);
    assert.deepEqual(
      p.waiting?.approvals.map((a) => [a.by, a.comment, a.verifiedBy]),
      [['bob', 'ping fails', null]],
    );
    assert.equal(p.waiting?.waitId, 'old-primary-dead#1');
    assert.match(
      p.steps.find((s) => s.name === 'approval:old-primary-dead')?.detail ?? '',
      /^bob approved "old-primary-dead" \(unverified\): 1 of 2 approvals/,
    );
    await decide(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'carol', comment: 'iLO off' });
    const o = (await h.result()) as CheckpointOutcome;
    assert.equal(o.decision, 'approve');
    assert.equal(o.by, 'bob, carol');
    assert.deepEqual(
      o.approvals?.map((a) => a.by),
      ['bob', 'carol'],
    );
    assert.equal(o.comment, 'bob: ping fails; carol: iLO off');
  });

  it('M-of-N: an eligible rejection ends the wait at once, approvals so far notwithstanding', async () => {
    const h = await start({ approvals: { 'old-primary-dead': { approvals: 2, approvers: ['bob', 'carol'] } } });
    await decide(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'reject', by: 'carol', comment: 'its disk light blinks' });
    const o = (await h.result()) as CheckpointOutcome;
    assert.deepEqual([o.decision, o.by, o.comment], ['reject', 'carol', 'its disk light blinks']);
    assert.equal(o.approvals?.length, 1);
  });

  it("verified decisions: unsigned refused with how to decide instead; the console's and an operator's signatures count as their signer; forged, replayed and borrowed ones refused", async () => {
    const consoleKey = generateSigningKey();
    const bobKey = generateSigningKey();
    const mallory = generateSigningKey();
    const keys = { console: consoleKey.publicKey, 'operator:bob': bobKey.publicKey };
    const h = await start({
      verifiedDecisions: 'required',
      keys,
      consoleUrl: 'http://console.test',
      approvals: { 'old-primary-dead': { approvals: 2, approvers: ['bob', 'carol'] } },
    });
    const p = await h.query<Progress>('progress');
    const at = { workflowId: h.workflowId, runId: p.waiting!.runId, waitId: p.waiting!.waitId };
    assert.equal(p.waiting?.link, `http://console.test/runs/${h.workflowId}/checkpoints/old-primary-dead`);
    assert.equal(
      await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' }),
      `this cluster accepts only verified decisions: approve in the console (http://console.test/runs/${h.workflowId}/checkpoints/old-primary-dead), ` +
        `or sign with your own key: switchyard approve ${h.workflowId} old-primary-dead --as <you> --key <your key file>`,
    );
    const base = { checkpoint: 'old-primary-dead', decision: 'approve' as const, by: 'bob' };
    const key = (k: { privatePem: string }) => parseSigningKey(k.privatePem, 'test key');
    assert.match(await refusal(h, signDecision(base, at, key(mallory), 'console')), /signature does not verify with console's key/);
    assert.match(
      await refusal(h, signDecision(base, at, key(mallory), 'operator:mallory')),
      /signed with "operator:mallory", a key this cluster does not know/,
    );
    assert.match(
      await refusal(h, signDecision({ ...base, by: 'carol' }, at, key(bobKey), 'operator:bob')),
      /names "carol" but is signed with operator:bob's key/,
    );
    const altered = signDecision(base, at, key(consoleKey), 'console');
    assert.match(await refusal(h, { ...altered, comment: 'added later' }), /does not verify/);
    assert.match(
      await refusal(h, signDecision(base, { ...at, waitId: 'old-primary-dead#0' }, key(consoleKey), 'console')),
      /signed for wait old-primary-dead#0/,
    );
    assert.match(await refusal(h, signDecision(base, { ...at, runId: 'another-run' }, key(consoleKey), 'console')), /does not verify/);
    // bob through the console; then the same bob with his own key is the same person
    assert.equal((await decide(h, signDecision(base, at, key(consoleKey), 'console'))).decided, false);
    assert.equal(
      await refusal(h, signDecision({ ...base, by: 'BOB' }, at, key(bobKey), 'operator:bob')),
      '"bob" already approved "old-primary-dead" (1 of 2): another approver must',
    );
    const last = await decideSigned(
      env.client,
      h.workflowId,
      { checkpoint: 'old-primary-dead', decision: 'approve', by: 'carol', comment: 'off' },
      { key: key(consoleKey), name: 'console' },
    );
    assert.equal(last.accepted && last.result.decided, true);
    const o = (await h.result()) as CheckpointOutcome;
    assert.deepEqual(
      o.approvals?.map((a) => [a.by, a.verifiedBy]),
      [
        ['bob', 'console'],
        ['carol', 'console'],
      ],
    );
    const step = (await h.query<Progress>('progress')).steps.find((s) => s.name === 'checkpoint:old-primary-dead');
    assert.equal(step?.detail, 'approved by bob (signed in at the console), carol (signed in at the console): carol: off');
  });

  it('optional verification: unsigned counts (marked unverified), a bad signature is refused all the same; the CLI signs with --key', async () => {
    const bobKey = generateSigningKey();
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-key-'));
    try {
      const file = join(dir, 'bob.key');
      writeFileSync(file, bobKey.privatePem, { mode: 0o600 });
      const h = await start({ keys: { 'operator:bob': bobKey.publicKey } });
      const p = await h.query<Progress>('progress');
      const forged = signDecision(
        { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' },
        { workflowId: h.workflowId, runId: p.waiting!.runId, waitId: p.waiting!.waitId },
        parseSigningKey(generateSigningKey().privatePem, 'k'),
        'operator:bob',
      );
      assert.match(await refusal(h, forged), /does not verify/);
      const wrong = await cli('approve', h.workflowId, 'old-primary-dead', '--as', 'carol', '--key', file);
      assert.equal(wrong.code, 1);
      assert.match(
        wrong.stdout,
        /^refused: the decision names "carol" but is signed with operator:carol's key|^refused: the decision is signed with "operator:carol"/,
      );
      const ok = await cli('approve', h.workflowId, 'old-primary-dead', '--as', 'bob', '--key', file, '--comment', 'off');
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'accepted: approve at "old-primary-dead" by bob (signed)\n');
      const o = (await h.result()) as CheckpointOutcome;
      assert.deepEqual(
        o.approvals?.map((a) => a.verifiedBy),
        ['operator:bob'],
      );
      const bad = await cli('approve', h.workflowId, 'old-primary-dead', '--as', 'bob', '--key', join(dir, 'missing.key'));
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--key .*missing\.key: cannot read the key file \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('a signed start makes the starter verified; a forged one is noted and the starter counts as unverified', async () => {
    const consoleKey = generateSigningKey();
    const key = parseSigningKey(consoleKey.privatePem, 'k');
    for (const forged of [false, true]) {
      const workflowId = `cp-${randomUUID()}`;
      const signed = signStart(
        { cluster: 'demo', requestedBy: 'Alice' },
        { workflowId, workflowType: 'checkpointProbe' },
        forged ? parseSigningKey(generateSigningKey().privatePem, 'k') : key,
        'console',
      );
      const h = await env.client.workflow.start('checkpointProbe', {
        taskQueue,
        workflowId,
        args: [{ startedBy: 'Alice', startProof: signed.startProof, policy: { ...policy, keys: { console: consoleKey.publicKey } }, safety: true }],
      });
      let p: Progress | null = null;
      for (let i = 0; i < 100 && !p?.waiting; i++) {
        p = await h.query<Progress>('progress');
        if (!p.waiting) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(p?.waiting?.requestedByVerifiedBy, forged ? null : 'console');
      const note = p?.steps.find((s) => s.name === 'start-proof');
      if (forged) assert.match(note?.detail ?? '', /^the start's signature does not verify with console's key: the starter "alice" counts as unverified/);
      else assert.equal(note, undefined);
      // the verified starter is barred from approving, whatever case is typed
      assert.match(await refusal(h, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'ALICE' }), /started this run and may not approve/);
      await h.terminate('test over');
    }
  });
});
