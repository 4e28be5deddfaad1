/**
 * `switchyard failover` and the commands around it, run as an operator runs them: `bin/switchyard.js`
 * in subprocesses (--config, TEMPORAL_ADDRESS), a real `switchyard worker` process, a sandbox. Each
 * scenario asserts what the operator sees (exit codes, printed lines) and the cluster as read
 * directly (a PostgreSQL login, the traffic front), not through switchyard.
 *
 *   1. a dry run prints the plan and changes nothing;
 *   2. dc1 killed: `failover` without --wait returns at once with the id; `status` shows the run at
 *      old-primary-dead; a decision at the wrong checkpoint is refused (exit 1); the right one is
 *      accepted; `status --wait` follows it to the end; dc2 is primary;
 *   3. a second `failover --wait` (dc2 primary, dc1 down) is refused: exit 1 with the reason;
 *   4. (fresh sandbox) standby behind: `failover --wait` waits at accept-data-loss, `reject` from
 *      another process, the waiting process exits 1 saying "aborted" and that nothing was promoted;
 *   5. an unknown cluster: exit 2 (a usage error, not a failed run) naming the topology file, the
 *      cluster and the known ones; nothing is started.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sandboxOperatorKey } from '../../sandbox/access';
import { stopPart } from '../../sandbox';
import type { RunStatus } from '../../src/client/runs';
import type { FailoverResult } from '../../src/workflows/failover';
import { cli, killClis, shown, startCli, type CliResult } from '../support/cli';
import { startStage, type Stage } from '../support/stage';
import { startWorkerProcess, stopWorkerProcesses } from '../support/worker';

function parseJson<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`expected JSON on stdout:\n${shown(r)}`);
  }
}

/** `switchyard status <id> --json`, again and again, until pred holds (or the run closes first). */
async function statusUntil(st: Stage, id: string, pred: (s: RunStatus) => boolean, what: string, timeoutMs = 150_000): Promise<RunStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: CliResult | null = null;
  for (;;) {
    last = await cli(st, ['status', id, '--json']);
    assert.equal(last.code, 0, `status --json of a run in progress: ${shown(last)}`);
    const s = parseJson<RunStatus>(last);
    if (pred(s)) return s;
    if (s.status !== 'RUNNING') throw new Error(`run ${id} closed (${s.status}) before ${what}:\n${last.stdout}`);
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms; last status:\n${last.stdout}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function isStandby(st: Stage, node: string): Promise<boolean> {
  const [r] = await st.nodeQuery(node, 'SELECT pg_is_in_recovery() AS standby');
  return r.standby === true;
}

const ids = (prefix: string) => `${prefix}-${Date.now()}`;

function startWorker(st: Stage) {
  const w = startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
  return w.waitFor((l) => l.msg === 'worker started').then(() => w);
}

async function cleanUp(st: Stage | undefined): Promise<void> {
  killClis();
  await stopWorkerProcesses();
  await st?.down();
}

describe('switchyard failover from the command line: dry run, dc1 down, approvals, a refused second run', () => {
  let st: Stage;
  before(async () => {
    // A readiness reading is a lower bound of dc1's position that counts for 1 s only: the gate asks.
    st = await startStage({ worker: false, edit: (c) => void (c.failover = { ...((c.failover as object) ?? {}), dataLossFreshness: '1s' }) });
    await startWorker(st);
  });
  after(async () => {
    await cleanUp(st);
  });

  it('--dry-run prints the plan (JSON and text), exits 0 and changes nothing', async () => {
    const r = await cli(st, ['failover', 'demo', '--dry-run', '--json', '--as', 'alice']);
    assert.equal(r.code, 0, shown(r));
    const s = parseJson<RunStatus & { result: FailoverResult }>(r);
    assert.equal(s.status, 'COMPLETED');
    assert.equal(s.outcome, 'planned');
    assert.equal(s.succeeded, true);
    assert.equal(s.result.outcome, 'planned');
    assert.equal(s.result.dryRun, true);
    assert.equal(s.result.requestedBy, 'alice');
    assert.deepEqual(s.result.from, { site: 'dc1', node: 'dc1-db' });
    assert.deepEqual(s.result.to, { site: 'dc2', node: 'dc2-db' });
    assert.equal(s.result.state, 'dry run: nothing was changed');
    const planned = s.result.plan.map((p) => p.step);
    for (const step of ['lock', 'fence', 'checkpoint:old-primary-dead', 'data-loss', 'promote', 'traffic:front', 'maintenance-off:dc2'])
      assert.ok(planned.includes(step), `plan has ${step}: ${planned.join(', ')}`);
    assert.match(s.workflowId, /^failover-dry-run-demo-/);

    // The same for a person: the plan as a table, the outcome on the first line.
    const text = await cli(st, ['failover', 'demo', '--dry-run', '--as', 'alice']);
    assert.equal(text.code, 0, shown(text));
    assert.match(text.stdout, /^started failover failover-dry-run-demo-\S+$/m);
    assert.match(text.stdout, /^failover-dry-run-demo-\S+: COMPLETED \(planned\)$/m);
    assert.match(text.stdout, /^ {2}plan:$/m);
    assert.match(text.stdout, /^ {4}promote +dc2-db +pg_promote on dc2-db/m);
    assert.match(text.stdout, /^ {2}state: dry run: nothing was changed$/m);

    // Nothing changed, read directly.
    assert.equal(await isStandby(st, 'dc1-db'), false, 'dc1 is still the primary');
    assert.equal(await isStandby(st, 'dc2-db'), true, 'dc2 is still a standby');
    const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after the dry run') RETURNING host(inet_server_addr()) AS server`);
    assert.equal(w.server, st.cluster.postgres.nodes['dc1-db'].host, 'the front still sends writes to dc1');
    assert.deepEqual(await st.maintenance('dc1'), { on: false, http: 200 });
  });

  it('dc1 killed: failover returns at once with the id; a wrong decision is refused, the right one accepted; status --wait follows it to dc2', async () => {
    // An operator's last readiness check: the failover's last known position of dc1.
    const check = await cli(st, ['check', 'demo']);
    assert.equal(check.code, 0, shown(check));
    assert.match(check.stdout, /^cluster demo: READY +primary dc1 \(dc1-db\)/m);
    const rowsBefore = (await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('before the outage') RETURNING id`)).map((x) => String(x.id));
    // Let the standby replay that row before dc1 dies (the readiness reading was taken before it).
    for (let i = 0; i < 100; i++) {
      const got = await st.nodeQuery('dc2-db', 'SELECT count(*)::int AS n FROM public.sandbox_rows WHERE id = $1', [rowsBefore[0]]);
      if (got[0].n === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopPart(st.sb.opts, 'dc1', 'kill');
    assert.equal(await st.nodeAnswers('dc1-db'), false, 'dc1-db is down');

    const id = ids('failover-cli-site-down');
    // alice signs the start with her own key: the run knows she started it (two-person rule).
    const keyOf = (name: string) => sandboxOperatorKey(st.sb.status.console.operators, name);
    const started = await cli(st, ['failover', 'demo', '--as', 'alice', '--key', keyOf('alice'), '--id', id, '--reason', 'dc1 lost power']);
    assert.equal(started.code, 0, shown(started));
    assert.equal(started.stdout, `started failover ${id}\nfollow it:  switchyard status ${id} --wait\n`);
    assert.doesNotMatch(started.stderr, /no worker polls/, 'a worker polls the queue');
    // It returned while the run goes on (the run needs a person at old-primary-dead to finish).
    assert.equal((await st.client.workflow.getHandle(id).describe()).status.name, 'RUNNING');

    const waiting = await statusUntil(st, id, (s) => s.progress?.waitingFor === 'old-primary-dead', 'the old-primary-dead checkpoint');
    assert.equal(waiting.status, 'RUNNING');
    assert.equal(waiting.type, 'failover');
    assert.equal(waiting.succeeded, false);
    assert.equal(waiting.progress?.waiting?.requestedByVerifiedBy, 'operator:alice');
    const prompt = waiting.progress!.steps.find((s) => s.name === 'checkpoint:old-primary-dead');
    assert.equal(prompt?.state, 'waiting');
    assert.match(prompt?.detail ?? '', /could not be fenced.*actually is dead/s);

    // The text status says where it waits.
    const text = await cli(st, ['status', id]);
    assert.equal(text.code, 0, shown(text));
    assert.match(text.stdout.split('\n')[0], new RegExp(`^${id} \\(failover\\): RUNNING, waiting at checkpoint "old-primary-dead"$`));
    assert.match(text.stdout, /^ {2}waiting checkpoint:old-primary-dead /m);
    assert.match(text.stdout, /^ {2}skipped fence .*unreachable/m);

    // A decision at a checkpoint the run is not waiting at: refused, exit 1, nothing changes.
    const wrong = await cli(st, ['approve', id, 'accept-data-loss', '--as', 'bob']);
    assert.equal(wrong.code, 1, shown(wrong));
    assert.match(wrong.stdout, /^refused: .*not waiting at "accept-data-loss" \(it waits at "old-primary-dead"\)$/m);
    const still = await cli(st, ['status', id, '--json']);
    assert.equal(parseJson<RunStatus>(still).progress?.waitingFor, 'old-primary-dead');
    assert.equal(await isStandby(st, 'dc2-db'), true, 'nothing was promoted by the refused decision');

    const ok = await cli(st, ['approve', id, 'old-primary-dead', '--as', 'bob', '--key', keyOf('bob'), '--comment', 'powered off']);
    assert.equal(ok.code, 0, shown(ok));
    assert.equal(ok.stdout, 'accepted: approve at "old-primary-dead" by bob (signed)\n');
    // dc1's last known position is the readiness run's, too old to count: a person is asked.
    await statusUntil(st, id, (s) => s.progress?.waitingFor === 'accept-data-loss', 'the accept-data-loss checkpoint');
    const loss = await cli(st, ['approve', id, 'accept-data-loss', '--as', 'bob', '--comment', 'no writes after the check']);
    assert.equal(loss.code, 0, shown(loss));

    const follow = await cli(st, ['status', id, '--wait']);
    assert.equal(follow.code, 0, shown(follow));
    const lines = follow.stdout.trimEnd().split('\n');
    for (const step of ['lock', 'checkpoint:old-primary-dead', 'promote', 'write-probe:dc2-db', 'traffic:front', 'maintenance-off:dc2', 'unlock'])
      assert.ok(
        lines.some((l) => new RegExp(`^ {2}done {4}${step.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `).test(l)),
        `step ${step} printed as done:\n${follow.stdout}`,
      );
    assert.match(follow.stdout, /^ {2}done {4}checkpoint:old-primary-dead .*approved by bob \(signed with bob's key\): powered off$/m);
    // It ends as `failover --wait` does: the outcome, the state it left, RTO and bytes lost.
    const end = lines.slice(lines.findIndex((l) => l.startsWith(`${id}: `)));
    assert.equal(end[0], `${id}: COMPLETED (completed)`, `the outcome follows the steps:\n${follow.stdout}`);
    assert.match(
      end[1] ?? '',
      /^ {2}state: dc2-db \(dc2\) is primary on timeline 2; dc1-db \(dc1\) was confirmed dead by a person, is watched by the guard, and needs `switchyard rejoin demo --node dc1-db`$/,
    );
    assert.match(end[2] ?? '', /^ {2}RTO: [\d.]+ s from the decision to promote until traffic was verified; [\d.]+ s from start$/);
    assert.match(end[3] ?? '', /^ {2}data lost: 0 bytes/);
    assert.equal(end.length, 4, follow.stdout);

    const final = await cli(st, ['status', id, '--json']);
    assert.equal(final.code, 0, shown(final));
    const s = parseJson<RunStatus & { result: FailoverResult }>(final);
    assert.equal(s.status, 'COMPLETED');
    assert.equal(s.outcome, 'completed');
    assert.equal(s.succeeded, true);
    assert.equal(s.progress?.waitingFor, null);
    assert.equal(s.result.outcome, 'completed');
    assert.equal(s.result.requestedBy, 'alice');
    assert.equal(s.result.reason, 'dc1 lost power');
    assert.deepEqual(s.result.topology.primarySite, 'dc2');
    assert.deepEqual(
      s.result.checkpoints.map((c) => [c.checkpoint, c.decision, c.by, c.comment]),
      [
        ['old-primary-dead', 'approve', 'bob', 'powered off'],
        ['accept-data-loss', 'approve', 'bob', 'no writes after the check'],
      ],
    );
    assert.equal(s.result.dataLostBytes, 0);

    // The cluster, read directly: dc2 is the primary, has the rows, and the front sends writes there.
    assert.equal(await isStandby(st, 'dc2-db'), false, 'dc2 was promoted');
    assert.equal(await st.nodeAnswers('dc1-db'), false, 'dc1 is still down');
    const onDc2 = (await st.nodeQuery('dc2-db', 'SELECT id FROM public.sandbox_rows')).map((x) => String(x.id));
    for (const r of rowsBefore) assert.ok(onDc2.includes(r), `row ${r} written before the outage is on dc2`);
    const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after the failover') RETURNING host(inet_server_addr()) AS server`);
    assert.equal(w.server, st.cluster.postgres.nodes['dc2-db'].host);
  });

  it('a second failover --wait with nothing to promote (dc2 primary, dc1 down) exits 1 and prints the refusal', async () => {
    const r = await cli(st, ['failover', 'demo', '--as', 'alice', '--wait']);
    assert.equal(r.code, 1, shown(r));
    assert.match(r.stdout, /^started failover failover-demo-\S+$/m);
    assert.match(r.stdout, /^failover-demo-\S+: FAILED$/m);
    assert.match(
      r.stdout,
      /^ {2}failed: no standby to promote: the only reachable primary is dc2-db and no node is a reachable standby \(.*dc1-db: unreachable/m,
    );
    // The refusal changed nothing: dc2 is still the one primary, writes go there.
    assert.equal(await isStandby(st, 'dc2-db'), false);
    assert.equal(await st.nodeAnswers('dc1-db'), false);
    const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after the refusal') RETURNING host(inet_server_addr()) AS server`);
    assert.equal(w.server, st.cluster.postgres.nodes['dc2-db'].host);
  });
});

describe('switchyard failover from the command line: standby behind, rejected at accept-data-loss; unknown cluster', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({ worker: false });
    await startWorker(st);
  });
  after(async () => {
    await cleanUp(st);
  });

  it('failover --wait waits at accept-data-loss; rejected from another process, it exits 1 saying aborted and that nothing was promoted', async () => {
    // dc2 cut off from dc1's WAL while writes continue on dc1: it falls behind in what it received.
    await st.standbyFallsBehind('dc2-db', 500);

    const id = ids('failover-cli-behind');
    const waiter = startCli(st, ['failover', 'demo', '--as', 'alice', '--wait', '--id', id]);
    // `status` answers once the run exists: the --wait process says so first.
    for (let i = 0; i < 300 && !waiter.stdout().includes(`started failover ${id}`); i++) {
      if (waiter.proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(waiter.stdout(), new RegExp(`^started failover ${id}$`, 'm'), `the --wait process started the run:\n${waiter.stdout()}`);
    const p = await statusUntil(st, id, (s) => s.progress?.waitingFor === 'accept-data-loss', 'the accept-data-loss checkpoint');
    assert.match(p.progress!.steps.find((s) => s.name === 'checkpoint:accept-data-loss')?.detail ?? '', /behind the old primary by \d+ bytes/);
    // The waiting process tells the operator how to decide (it polls once a second).
    for (let i = 0; i < 50 && !/waiting at checkpoint "accept-data-loss"/.test(waiter.stdout()); i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(
      waiter.stdout().includes(`  waiting at checkpoint "accept-data-loss": decide with  switchyard approve|reject ${id} accept-data-loss --as <name>`),
      `the --wait process shows the checkpoint:\n${waiter.stdout()}`,
    );

    const no = await cli(st, ['reject', id, 'accept-data-loss', '--as', 'bob', '--comment', 'too much to lose']);
    assert.equal(no.code, 0, shown(no));
    assert.equal(no.stdout, 'accepted: reject at "accept-data-loss" by bob\n');

    const r = await waiter.done;
    assert.equal(r.code, 1, shown(r));
    assert.match(r.stdout, new RegExp(`^started failover ${id}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^${id}: COMPLETED \\(aborted\\)$`, 'm'));
    assert.match(r.stdout, /^ {2}stopped because: accept-data-loss rejected by bob: too much to lose \(\d+ bytes behind\)$/m);
    assert.match(r.stdout, /^ {2}state: nothing was promoted: dc2-db \(dc2\) is still a standby; undone: .*unfence dc1-db/m);
    assert.doesNotMatch(r.stdout, /RTO|data lost/, 'no RTO or data loss for a run that promoted nothing');

    // `status --wait` on the closed run agrees, and says why too: an aborted runbook is not success.
    const again = await cli(st, ['status', id, '--wait']);
    assert.equal(again.code, 1, shown(again));
    assert.match(again.stdout, /^ {2}done {4}checkpoint:accept-data-loss .*rejected by bob/m);
    assert.match(again.stdout, new RegExp(`^${id}: COMPLETED \\(aborted\\)$`, 'm'));
    assert.match(again.stdout, /^ {2}stopped because: accept-data-loss rejected by bob/m);
    assert.match(again.stdout, /^ {2}state: nothing was promoted/m);

    // The cluster, read directly: dc2 still a standby, dc1 primary again and taking writes through the front.
    assert.equal(await isStandby(st, 'dc2-db'), true, 'dc2 was not promoted');
    assert.equal(await isStandby(st, 'dc1-db'), false, 'dc1 is the primary');
    const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after the abort') RETURNING host(inet_server_addr()) AS server`);
    assert.equal(w.server, st.cluster.postgres.nodes['dc1-db'].host);
    assert.deepEqual(await st.maintenance('dc1'), { on: false, http: 200 });
  });

  it('failover (and check) of an unknown cluster exit 2 naming it and the known ones, and start nothing', async () => {
    const id = ids('failover-cli-nosuch');
    const r = await cli(st, ['failover', 'nosuch', '--as', 'alice', '--id', id]);
    assert.equal(r.code, 2, `a usage error (exit 2), not a failed run: ${shown(r)}`);
    assert.equal(r.stdout, '', shown(r));
    assert.equal(r.stderr, `switchyard: ${st.configPath}: unknown cluster "nosuch"; the topology has: "demo"\n`);
    await assert.rejects(st.client.workflow.getHandle(id).describe(), /not found/i, 'no run was started');
    // `check` the same: exit 2 is a typo, exit 1 would read as "not ready".
    const c = await cli(st, ['check', 'nosuch']);
    assert.equal(c.code, 2, shown(c));
    assert.match(c.stderr, /unknown cluster "nosuch"; the topology has: "demo"/);
  });
});
