/**
 * The failover's data-loss gate: the standby read again, how much the old primary had that it
 * did not receive (measured from the best source there is), and the `accept-data-loss`
 * checkpoint when that is past the threshold or not known well enough.
 */
import type { PgFenceResult, PgNodeStatus } from '../../contract/observations';
import { formatBytes } from '../../contract/format';
import { durationSeconds } from '../../topology/duration';
import { judgeLoss, lossGate, type DataLoss } from '../lib/data-loss';
import { notApproved } from '../lib/checkpoint';
import { Aborted, describeNode, reads, refused } from '../lib/runbook';
import type { Attempt, Ctx } from './types';

/** The measured loss once the gate let it through (asked and approved, or not asked); an Aborted when a person did not approve. */
export async function dataLossGate(c: Ctx, a: Attempt, oldStatus: PgNodeStatus, preflightAt: string, timelineBefore: number | null): Promise<DataLoss> {
  const { cluster, steps, layout, v2 } = c;
  const { old, target } = a;
  const standbyNow = await steps.run(`standby:${target.name}`, () => reads.pgStatus({ cluster, node: target.name }), describeNode);
  if (!standbyNow.reachable)
    throw refused(`${target.name} (${target.site}), the standby to promote, stopped answering: ${standbyNow.error ?? 'no answer'}. Nothing was promoted.`);
  if (standbyNow.inRecovery === false && timelineBefore !== null && (standbyNow.timeline ?? 0) > timelineBefore) {
    steps.note('data-loss', `${target.name} is already out of recovery (timeline ${standbyNow.timeline}): promoted earlier`);
  }
  const loss = await measureLoss(c, old.name, a.fence, oldStatus, standbyNow, preflightAt);
  steps.note('data-loss', loss.detail, 'done');
  const threshold = layout.dataLossThresholdBytes;
  const gate = v2
    ? lossGate(loss, threshold, durationSeconds(layout.failover.dataLossFreshness ?? '10s'), Date.now())
    : { ask: loss.bytes === null || loss.bytes > threshold, why: '' };
  // Without a person, only an exact figure will do: a fresh lower bound is a person's call.
  if (c.staged?.automatic && !gate.ask && !loss.exact && a.decisions.length === 0) {
    gate.ask = true;
    gate.why = `automatic mode needs the exact figure, and ${gate.why}`;
  }
  if (gate.ask) {
    const prompt =
      loss.bytes === null
        ? `The data lost cannot be measured: ${loss.detail}. Approve to promote ${target.name} anyway; reject to stop with nothing promoted.`
        : v2 && loss.bytes <= threshold
          ? `How much ${old.name} wrote that ${target.name} does not have is not known: ${gate.why}. ${loss.detail}. ` +
            `Approving promotes ${target.name}; whatever ${old.name} committed after that reading is lost from the new timeline. ` +
            `Reject to stop with nothing promoted.`
          : `${target.name} is behind the old primary by ${loss.bytes} bytes ` +
            `(${formatBytes(loss.bytes)}${loss.exact ? '' : ' at least'}; threshold ${threshold} bytes): ${loss.detail}. ` +
            `Approving promotes ${target.name} and those writes are lost from the new timeline. Reject to stop with nothing promoted.`;
    const d = await a.checkpoints.wait('accept-data-loss', { prompt, safety: true });
    a.decisions.push(d);
    if (d.decision !== 'approve')
      throw new Aborted(notApproved(d, { comment: true, suffix: ` (${loss.bytes === null ? 'unknown' : loss.bytes} bytes behind)` }));
  } else if (v2) steps.note('data-loss-gate', `not asked: ${gate.why}`);
  return loss;
}

/** The old primary's last known position against what the standby has: the data-loss gate's input. */
async function measureLoss(
  c: Ctx,
  oldNode: string,
  fence: PgFenceResult | null,
  oldAtStart: PgNodeStatus,
  standby: PgNodeStatus,
  oldAtStartAt: string,
): Promise<DataLoss> {
  const control = fence?.control?.ok ? fence.control : null;
  const exactOrLive =
    (control && control.state === 'shut down' && control.checkpointLsn) || (oldAtStart.reachable && oldAtStart.inRecovery === false && oldAtStart.currentLsn);
  const last = exactOrLive
    ? null
    : await c.steps
        .run(
          'last-position',
          () => reads.lastPrimaryPosition({ cluster: c.cluster }),
          (r) => r.detail,
        )
        .catch(() => null);
  return judgeLoss({ oldNode, control, oldAtStart, last, standby, oldAtStartAt });
}
