/**
 * restore with "files": put a file set (topology `backup.files`) of a backup back onto a host,
 * under the cluster's lock: plan (read-only: a path outside the set is refused here, with nothing
 * changed; the target's files compared with the backup's) → lock → restore (staged, authenticated,
 * extracted and checked on the target before anything is moved; what is in the way moved aside
 * to <path>.switchyard-<stamp>, never deleted; owners and modes kept as far as the SSH user may).
 *
 * A separate path of the restore workflow that runs recorded before file sets never reach (their
 * inputs have no "files"), so it needs no patch.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { FileSetPlan, FileSetRestoreResult } from '../contract/backup-files';
import type { PlanStep } from '../contract/messages';
import type { StartProof } from '../contract/decision-proof';
import { fileSetCalls, fileSetCopying } from './lib/file-set-activities';
import { notifyVia, reads, seconds } from './lib/runbook';
import { StepLog } from './lib/steps';
import { withClusterLock } from './lib/with-cluster-lock';
import type { RestoreInput, RestoreResult } from './restore';

/** UTC to the second, as the moved-aside copies are named: 20250101T120000Z. */
export function restoreStamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export async function restoreFiles(
  input: RestoreInput,
  run: { cluster: string; requestedBy: string; dryRun: boolean; startProof?: StartProof; backupId: string; steps: StepLog },
): Promise<RestoreResult> {
  const { cluster, requestedBy, dryRun, backupId, steps } = run;
  const set = input.files;
  if (typeof set !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(set))
    throw ApplicationFailure.nonRetryable(`restore "files" must name a file set of backup.files, got ${JSON.stringify(set)}`, 'ConfigError');
  if (input.kind !== undefined || input.region !== undefined || (input as { targetTime?: unknown }).targetTime !== undefined)
    throw ApplicationFailure.nonRetryable(
      `restore "files" puts a file set back onto a host: it does not go with "kind", "region" or "targetTime" (those restore the database)`,
      'ConfigError',
    );
  const paths = input.paths;
  if (paths !== undefined && (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string')))
    throw ApplicationFailure.nonRetryable(`restore "paths" must be a list of absolute paths, got ${JSON.stringify(paths)}`, 'ConfigError');
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `backup server ${l.backup?.host ?? 'none'}; file sets ${(l.backup?.files ?? []).map((f) => f.set).join(', ') || 'none'}`,
  );
  if (!layout.backup) throw ApplicationFailure.nonRetryable(`cluster ${cluster} has no "backup" section in the topology`, 'ConfigError');
  const fs = (layout.backup.files ?? []).find((f) => f.set === set);
  if (!fs)
    throw ApplicationFailure.nonRetryable(
      `cluster ${cluster} has no file set "${set}" in backup.files; known: ${(layout.backup.files ?? []).map((f) => f.set).join(', ') || 'none'}`,
      'ConfigError',
    );
  const target = input.target;
  if (!layout.hosts.some((h) => h.name === target))
    throw ApplicationFailure.nonRetryable(
      `restore "target" of a file set must be a host of ${cluster} (${layout.hosts.map((h) => h.name).join(', ')}), got ${JSON.stringify(target)}`,
      'ConfigError',
    );
  const { workflowId } = workflowInfo();
  const notify = notifyVia(layout.notify, cluster, workflowId);
  const startedMs = Date.now();
  const req = { cluster, backupId, set, target, ...(paths?.length ? { paths } : {}) };
  const done = (outcome: RestoreResult['outcome'], state: string, extra: Partial<RestoreResult> = {}): RestoreResult => ({
    cluster,
    backupId,
    kind: 'files',
    target,
    outcome,
    abortedBecause: null,
    state,
    movedAside: null,
    instance: null,
    checkpoints: [],
    durationSeconds: seconds(startedMs, Date.now()),
    plan: [],
    steps: steps.snapshot(),
    ...extra,
  });

  // Read-only, before the lock: refuses a path outside the set and an unusable key.
  const plan: FileSetPlan = await steps.run(
    'plan',
    () => fileSetCalls.fileSetPlan(req),
    (p) => p.detail,
  );
  if (dryRun) {
    const p: PlanStep[] = [
      { step: 'lock', target: cluster, action: 'take the cluster lock' },
      {
        step: 'stage',
        target,
        action: `copy the archive of file set ${set} from the ${plan.from === 'host' ? 'backup host' : 'store'}${plan.encrypted ? ', decrypting and authenticating it' : ''}, extract and check it beside ${fs.paths[0]}`,
      },
      {
        step: 'swap',
        target,
        action:
          `move aside (kept) ${plan.differ.length} differing entries${plan.differ.length ? ` (${plan.differ.slice(0, 5).join(', ')}${plan.differ.length > 5 ? ', …' : ''})` : ''}, ` +
          `put back ${plan.differ.length + plan.missing.length} of ${plan.restoring}, leave ${plan.same} already as backed up`,
      },
    ];
    steps.note('plan', p.map((x) => `${x.step} → ${x.action}`).join('; '));
    return done('planned', 'dry run: nothing was changed', { plan: p, files: { plan } });
  }
  return withClusterLock(cluster, 'restore', requestedBy, steps, async () => {
    await notify('restore.started', `restore of file set ${set} of ${backupId} onto ${target} (${cluster}) started by ${requestedBy} (${workflowId})`);
    const r: FileSetRestoreResult = await steps.run(
      'restore-files',
      () => fileSetCopying.fileSetRestore({ ...req, stamp: restoreStamp(startedMs) }),
      (x) => x.detail,
    );
    const kept = r.movedAside.length ? `; what was there is kept aside: ${r.movedAside.map((a) => a.to).join(', ')}` : '';
    const notKept = r.notKept.length ? `; ${r.notKept.length} owner(s) or mode(s) could not be kept (see the step)` : '';
    const state = `file set ${set} of backup ${backupId} is back on ${target}: ${r.placed.length} entries placed, ${r.unchanged} already as backed up${kept}${notKept}`;
    steps.note('result', state);
    await notify('restore.completed', `restore of ${cluster}: ${state}`);
    return done('completed', state, { files: { plan, restore: r } });
  });
}
