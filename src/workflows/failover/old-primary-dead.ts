/**
 * The failover's `old-primary-dead` checkpoint and the checks around it: a person confirms when the
 * old primary could not be fenced from here (or always, when the cluster says so), and what is seen
 * afterwards must agree; right before promotion (v2) the old primary is read once more.
 */
import { notApproved } from '../lib/checkpoint';
import { Aborted, describeNode, refused } from '../lib/runbook';
import { explainState, nodeState, type NodeState } from '../lib/node-state';
import { messageOf } from '../lib/steps';
import type { Attempt, Ctx } from './types';

/** The old primary as seen now; a failed read is "unknown". */
export async function observeOld(c: Ctx, a: Attempt, step: string): Promise<{ state: NodeState; seen: string }> {
  const { cluster, steps } = c;
  const now = await steps.run(step, () => a.reach.pgStatus({ cluster, node: a.old.name }), describeNode).catch((err: unknown) => messageOf(err as Error));
  if (typeof now === 'string') return { state: 'unknown', seen: `the status read failed: ${now}` };
  const state = nodeState(now);
  return { state, seen: `${describeNode(now)} (${explainState(state)})` };
}

/** The refusal when the old primary still answers as a primary after old-primary-dead was approved. */
function stillPrimary(a: Attempt, seen: string) {
  return refused(
    `${a.oldWhere} still accepts connections as a primary (${seen}) although old-primary-dead was approved: ` +
      `promoting ${a.target.name} now would split the cluster. ` +
      `Stop PostgreSQL on ${a.old.name} or cut it off from the network, then start the failover again.`,
  );
}

/** Ask until a person's approval agrees with what we see: an old primary that answers is refused, an unknown one asked about again. */
async function askUntilDown(c: Ctx, a: Attempt, firstPrompt: string): Promise<void> {
  const { old, target } = a;
  let prompt = firstPrompt;
  for (;;) {
    const d = await a.checkpoints.wait('old-primary-dead', { prompt, safety: true });
    a.decisions.push(d);
    if (d.decision !== 'approve') throw new Aborted(notApproved(d, { comment: true }));
    // A person's word does not outrank what we can see: a primary that still answers is not dead,
    // and one whose state cannot be read is asked about again, never taken for dead.
    const now = await observeOld(c, a, `confirm-down:${old.name}`);
    if (now.state === 'primary') throw stillPrimary(a, now.seen);
    if (now.state !== 'unknown') {
      a.approvedDead = true;
      return;
    }
    prompt =
      `After ${d.by}'s approval ${old.name} was checked again and its state is UNKNOWN: ${now.seen}. Nothing was promoted. ` +
      `It may still take writes (a frozen or hung machine resumes where it stopped). ` +
      `Power it off or cut it off from clients and from ${target.name}, then approve again; reject to stop with nothing promoted.`;
    c.steps.note(`unknown:${old.name}`, prompt, 'failed');
  }
}

/** The old-primary-dead checkpoint, when the old primary could not be fenced here or the cluster always asks. */
export async function confirmOldPrimaryDead(c: Ctx, a: Attempt): Promise<void> {
  const { cluster, steps, layout } = c;
  const { old, target } = a;
  // Staged by the watch, no person decided to fail over: one is asked even after a fence, unless
  // automatic mode lets the run go on (it fenced the old primary itself).
  const stagedAsks = c.staged !== null && !(c.staged.automatic && a.fenced);
  if (a.fenced && layout.failover.confirmOldPrimaryDead !== 'always' && !stagedAsks) return;
  const staged = c.staged
    ? `This failover was staged by the watch (${c.staged.by}), not started by a person; ${c.staged.automatic ? 'automatic mode needs the old primary fenced by this run' : c.staged.why}. `
    : '';
  const why =
    staged +
    (a.fenced
      ? `${old.name} was fenced (${a.fence?.detail ?? 'instance stopped'})${c.staged ? '' : '; this cluster asks a person every time (failover.confirmOldPrimaryDead: always)'}.`
      : `${old.name} at ${old.site} could not be fenced and confirmed down from here.`);
  const prompt =
    `${why} Tried and seen: ${a.tried.join('; ')}. ` +
    `Ensure that the initial machine actually is dead (powered off, or cut off from clients and from ${target.name}) before approving: ` +
    `promoting ${target.name} while ${old.name} still takes writes splits the cluster. Reject to stop with nothing promoted.`;
  if (c.v2) return askUntilDown(c, a, prompt);
  const d = await a.checkpoints.wait('old-primary-dead', { prompt, safety: true });
  a.decisions.push(d);
  if (d.decision !== 'approve') throw new Aborted(notApproved(d, { comment: true }));
  const now = await steps.run(`confirm-down:${old.name}`, () => a.reach.pgStatus({ cluster, node: old.name }), describeNode).catch(() => null);
  if (now && now.reachable && now.inRecovery === false) throw stillPrimary(a, describeNode(now));
}

/**
 * Right before promotion (v2): the old primary once more, since the gate may have waited hours.
 * Back as a primary after the fence (restarted by hand, a reboot): fenced again, else refused;
 * unknown: a person is asked.
 */
export async function recheckBeforePromotion(c: Ctx, a: Attempt): Promise<void> {
  const { cluster, steps, layout } = c;
  const { old, target } = a;
  let now = await observeOld(c, a, `recheck:${old.name}`);
  if (now.state === 'primary') {
    const f = await steps
      .run(
        'refence',
        () => a.fenceActs.pgFence({ cluster, node: old.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds, mark: a.mark }),
        (r) => r.detail,
      )
      .catch((err: unknown) => messageOf(err as Error));
    if (typeof f !== 'string') a.tried.push(`fenced again right before promotion: ${f.detail}`);
    now = await observeOld(c, a, `recheck:${old.name}`);
  }
  if (now.state === 'primary') {
    throw refused(
      `${a.oldWhere} answers as a writable primary right before promotion (${now.seen}) and could not be fenced again: ` +
        `promoting ${target.name} now would split the cluster. Stop PostgreSQL on ${old.name}, then start the failover again.`,
    );
  }
  if (now.state === 'unknown') {
    await askUntilDown(
      c,
      a,
      `Right before promoting ${target.name}, ${old.name} was checked once more and its state is UNKNOWN: ${now.seen}. ` +
        `${a.approvedDead ? 'It was approved as dead before; ' : `It was ${a.fenced ? 'fenced' : 'not fenced'} earlier; `}it may still take writes. ` +
        `Power it off or cut it off, then approve; reject to stop with nothing promoted.`,
    );
  }
}
