/**
 * restore: bring a backup back, under the cluster's lock.
 *
 * From a base backup onto a database node ("pg"): the backup is copied next to the node's data
 * directory and checked against its manifest while PostgreSQL still runs (a bad backup changes
 * nothing) → if the node is the live primary, the `replace-data` checkpoint says what will be lost
 * and asks → PostgreSQL stopped → the data directory moved aside with a timestamp (never deleted)
 * → the backup extracted → started → verified (it answers, takes writes). Refused when another node
 * is a live primary: that would make a second primary (a standby is rebuilt with `rejoin`).
 * Rejected at `replace-data`, the staged copy is removed again (patch 'restore-discard-rejected-stage';
 * before it, the copy stayed until a later restore used or replaced it).
 * The roles read before the lock can be hours old when PostgreSQL is stopped (the checkpoint
 * waits), so they are read again under the lock right before the stop (patch
 * 'restore-roles-under-lock'), and a node whose role cannot be read (unreachable, an error, a
 * timeout, a refused login) counts as a live primary: the target is asked about at `replace-data`,
 * another node refuses the restore. Before that patch the roles were read only before the lock.
 *
 * From EBS snapshots ("ebs"): a new instance whose volumes come from the snapshots (an image
 * registered from them), with the recorded private IP, security groups, subnet, type and tags. If
 * a live instance still holds that IP, the `replace-instance` checkpoint asks before it is
 * terminated; nothing is terminated without it. With a region (one of backup.ebs.copyTo) the
 * instance is launched there from the backup's copies, refused when that region lacks the
 * recorded subnet or security groups (a restore does not make up a network).
 */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import { BACKUP_ID_RE, type EbsRestorePlan, type PgBackupEntry, type PitrReached } from '../contract/backup';
import { calls, copying } from './lib/backup-activities';
import type { FileSetPlan, FileSetRestoreResult } from '../contract/backup-files';
import { restoreFiles } from './restore-files';
import { Checkpoints, checkpointNotices, notApproved, type CheckpointOutcome } from './lib/checkpoint';
import { withClusterLock } from './lib/with-cluster-lock';
import { formatAge } from './lib/retention';
import { actions, describeNode, notifyVia, promotion, reads, refused, runbookInput, seconds } from './lib/runbook';
import { messageOf, StepLog } from './lib/steps';
import { checkTargetTime } from './lib/target-time';
import type { PlanStep, StepRecord } from '../contract/messages';
import type { PgNodeStatus } from '../contract/observations';

export const RESTORE_CHECKPOINTS = ['replace-data', 'replace-instance'] as const;

export interface RestoreInput {
  cluster: string;
  /** The backup id (with targetTime it may be left out: the newest base backup that finished before it). */
  from?: string;
  /** pg: a point in time (ISO): replay the WAL archive from the backup up to it, then promote. */
  targetTime?: string;
  /** The database node restored onto (pg), or whose instance is recreated (ebs). */
  target: string;
  /** Default: "pg" when the backup has a base backup, else "ebs" ("ebs" when a region is named). */
  kind?: 'pg' | 'ebs';
  /** ebs: restore in this region from the backup's copies there (backup.ebs.copyTo); default the cluster's ec2.region. */
  region?: string;
  /** Restore this file set (backup.files) onto `target`, a host, instead of the database (restore-files.ts). */
  files?: string;
  /** files: only these paths of the set (each within its declared paths); default the whole set. */
  paths?: string[];
  requestedBy: string;
  dryRun?: boolean;
}

export interface RestoreResult {
  cluster: string;
  backupId: string;
  kind: 'pg' | 'ebs' | 'files';
  target: string;
  outcome: 'completed' | 'aborted' | 'planned';
  abortedBecause: string | null;
  state: string;
  /** pg: where the old data directory is now (never deleted). */
  movedAside: string | null;
  /** ebs: the instance launched from the snapshots, and the one it replaced. */
  instance: { instanceId: string; privateIp: string | null; imageId: string; replaced: string | null } | null;
  checkpoints: CheckpointOutcome[];
  durationSeconds: number;
  plan: PlanStep[];
  steps: StepRecord[];
  /** pg with a target time: the point the restore replayed to. */
  reached?: PitrReached;
  /** files: the plan (what differs on the target) and, once restored, what was placed and moved aside. */
  files?: { plan: FileSetPlan; restore?: FileSetRestoreResult };
}

/** A node that is a live primary, or whose role is unknown (not reachable, or recovery state not read). */
function mayBePrimary(n: PgNodeStatus): boolean {
  return !(n.reachable && n.inRecovery === true);
}

export async function restore(input: RestoreInput): Promise<RestoreResult> {
  const { cluster, requestedBy, dryRun, startProof } = runbookInput('restore', input);
  const steps = new StepLog('restore', cluster);
  const targetTime = input.targetTime === undefined ? undefined : checkTargetTime(input.targetTime, 'restore "targetTime"');
  // With a target time and no backup named, the newest base backup that finished before it (chosen from the catalog below).
  let backupId = typeof input.from === 'string' ? input.from : '';
  if (!(targetTime !== undefined && input.from === undefined && input.files === undefined) && !BACKUP_ID_RE.test(backupId))
    throw ApplicationFailure.nonRetryable(
      `restore needs "from": a backup id (see \`switchyard retention ${cluster} --dry-run\`), got ${JSON.stringify(input.from)}`,
      'ConfigError',
    );
  // A file set onto a host: its own path (restore-files.ts), which runs recorded before file sets never reach.
  if (input.files !== undefined) return restoreFiles(input, { cluster, requestedBy, dryRun, startProof, backupId, steps });
  if (input.kind !== undefined && input.kind !== 'pg' && input.kind !== 'ebs')
    throw ApplicationFailure.nonRetryable(`restore "kind" must be "pg" or "ebs", got ${JSON.stringify(input.kind)}`, 'ConfigError');
  const region = input.region;
  if (region !== undefined && (typeof region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)))
    throw ApplicationFailure.nonRetryable(`restore "region" must be an AWS region such as "eu-central-1", got ${JSON.stringify(region)}`, 'ConfigError');
  if (region !== undefined && input.kind === 'pg')
    throw ApplicationFailure.nonRetryable(
      `restore "region" names where EBS snapshot copies are restored; a base backup ("kind": "pg") has no region: leave one of them out`,
      'ConfigError',
    );
  // Passed to the EBS activities only when named: the cluster's ec2.region otherwise.
  const inRegion = region !== undefined ? { region } : {};
  const where = region !== undefined ? ` in ${region}` : '';
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `backup server ${l.backup?.host ?? 'none'}`,
  );
  if (!layout.backup) throw ApplicationFailure.nonRetryable(`cluster ${cluster} has no "backup" section in the topology`, 'ConfigError');
  const node = layout.nodes.find((n) => n.name === input.target);
  if (!node)
    throw ApplicationFailure.nonRetryable(
      `restore "target" must be a database node of ${cluster} (${layout.nodes.map((n) => n.name).join(', ')}), got ${JSON.stringify(input.target)}`,
      'ConfigError',
    );
  const { workflowId } = workflowInfo();
  const notify = notifyVia(layout.notify, cluster, workflowId);
  const startedMs = Date.now();
  const checkpoints = new Checkpoints(steps, layout.checkpoints, requestedBy, RESTORE_CHECKPOINTS, checkpointNotices(notify), startProof);
  const decisions: CheckpointOutcome[] = [];

  // Which kind: what the backup has, unless asked.
  const pgList = await steps.run(
    'catalog:pg',
    () => calls.pgBackupList({ cluster }),
    (l) => `${l.length} base backups on ${layout.backup?.host}`,
  );
  if (targetTime !== undefined) {
    const t = Date.parse(targetTime);
    if (!backupId) {
      const before = pgList
        .filter((b) => b.complete && b.manifest && Date.parse(b.manifest.finishedAt) <= t)
        .sort((a, b) => Date.parse(b.manifest!.finishedAt) - Date.parse(a.manifest!.finishedAt))[0];
      if (!before)
        throw ApplicationFailure.nonRetryable(
          `cluster ${cluster} has no complete base backup that finished before ${targetTime}: a point-in-time restore replays forward from one`,
          'BackupNotFound',
        );
      backupId = before.backupId;
      steps.note('choose', `the newest base backup finished before ${targetTime}: ${backupId} (finished ${before.manifest!.finishedAt})`);
    }
    const chosen = pgList.find((b) => b.backupId === backupId);
    if (chosen?.manifest && Date.parse(chosen.manifest.finishedAt) > t)
      throw ApplicationFailure.nonRetryable(
        `backup ${backupId} finished at ${chosen.manifest.finishedAt}, after the target time ${targetTime}: leave out --from and the newest backup before it is chosen`,
        'BackupTooNew',
      );
    if (!layout.backup.archive)
      throw ApplicationFailure.nonRetryable(`a point-in-time restore of ${cluster} needs WAL archiving (backup.archive in the topology)`, 'ConfigError');
  }
  const pitr = targetTime !== undefined ? { targetTime } : {};
  const pgEntry: PgBackupEntry | undefined = pgList.find((b) => b.backupId === backupId);
  const kind: 'pg' | 'ebs' = input.kind ?? (region === undefined && pgEntry?.complete ? 'pg' : 'ebs');
  const base = { cluster, backupId, kind, target: node.name };
  const done = (outcome: RestoreResult['outcome'], state: string, extra: Partial<RestoreResult> = {}): RestoreResult => ({
    ...base,
    outcome,
    abortedBecause: null,
    state,
    movedAside: null,
    instance: null,
    checkpoints: decisions,
    durationSeconds: seconds(startedMs, Date.now()),
    plan: [],
    steps: steps.snapshot(),
    ...extra,
  });

  if (kind === 'pg') {
    if (!pgEntry || !pgEntry.complete || !pgEntry.manifest) {
      const known = pgList.filter((b) => b.complete).map((b) => b.backupId);
      const interrupted = pgEntry ? ' (its directory has no manifest: an interrupted backup)' : '';
      throw ApplicationFailure.nonRetryable(
        `no complete base backup "${backupId}" of ${cluster} on ${layout.backup.host}${interrupted}; ` +
          `complete ones: ${known.length ? known.join(', ') : 'none'}`,
        'BackupNotFound',
      );
    }
    const manifest = pgEntry.manifest;
    const nodes = await Promise.all(layout.nodes.map((n) => steps.run(`preflight:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
    const otherPrimary = nodes.find((n) => n.node !== node.name && n.reachable && n.inRecovery === false);
    // How to go on when another node is (or may be) the live primary.
    const instead = `To rebuild a standby use \`switchyard rejoin ${cluster} --node ${node.name}\`; to roll the cluster back, restore onto the primary.`;
    if (otherPrimary) {
      throw refused(`${otherPrimary.node} is a live primary of ${cluster}: restoring ${backupId} onto ${node.name} would start a second primary. ${instead}`);
    }
    const me = nodes.find((n) => n.node === node.name)!;
    const isLivePrimary = me.reachable && me.inRecovery === false;
    const age = formatAge(Math.max(0, (Date.now() - Date.parse(manifest.finishedAt)) / 1000));
    const backupSeen = `backup ${backupId} from ${manifest.finishedAt} (${age} old, ending at ${manifest.endLsn})`;
    const replaceData = (what: string) =>
      `${what} with ${backupSeen}? Every write after the backup is lost from ${node.name} (the old data directory is kept aside). Reject to change nothing.`;
    steps.note(
      'plan',
      `restore base backup ${backupId} (${manifest.finishedAt}, ${age} old, LSN ${manifest.endLsn}, from ${manifest.sourceNode}) onto ${node.name}` +
        (isLivePrimary ? `, the live primary at ${me.currentLsn ?? '?'}` : ''),
    );
    if (dryRun) {
      const plan: PlanStep[] = [
        { step: 'lock', target: cluster, action: 'take the cluster lock' },
        {
          step: 'stage',
          target: node.name,
          action: `copy ${manifest.files.length} files (${manifest.totalBytes} bytes) beside the data directory and check them against the manifest`,
        },
        ...(isLivePrimary
          ? [{ step: 'checkpoint:replace-data', target: node.name, action: `a person approves: writes after ${manifest.finishedAt} are lost` }]
          : []),
        { step: 'stop', target: node.name, action: 'stop PostgreSQL' },
        { step: 'swap', target: node.name, action: 'move the data directory aside (kept), extract the backup' },
        { step: 'start', target: node.name, action: 'start PostgreSQL; verify it answers and takes writes' },
      ];
      steps.note('plan', plan.map((p) => `${p.step} → ${p.action}`).join('; '));
      return done('planned', 'dry run: nothing was changed', { plan });
    }
    // The staged copy is as large as the backup: it does not stay on the node's disk when nothing is restored.
    const discardStage = async (): Promise<string> => {
      const discard = await steps
        .run(
          'discard-stage',
          () => calls.pgRestoreDiscard({ cluster, backupId, node: node.name }),
          (r) => r.detail,
        )
        .catch((err: unknown) => messageOf(err as Error));
      return typeof discard === 'string'
        ? `; the staged copy could not be removed (${discard}): remove <data directory>.switchyard-restore-${backupId} on ${node.sshHost} by hand`
        : '';
    };
    /** Rejected at replace-data: the staged copy removed, nothing else changed. */
    const keepData = async (because: string): Promise<RestoreResult> => {
      const left = await discardStage();
      steps.note('result', `${because}: ${node.name} keeps its data${left}`, 'skipped');
      return done('aborted', `nothing was changed: ${node.name} keeps its data${left}`, { abortedBecause: because });
    };
    return withClusterLock(cluster, 'restore', requestedBy, steps, async () => {
      await notify('restore.started', `restore of ${backupId} onto ${node.name} (${cluster}) started by ${requestedBy} (${workflowId})`);
      await steps.run(
        'stage',
        () => copying.pgRestoreStage({ cluster, backupId, node: node.name, ...pitr }),
        (r) => r.detail,
      );
      if (isLivePrimary) {
        const d = await checkpoints.wait('replace-data', {
          prompt: replaceData(`Replace the data of ${node.name}, the live primary of ${cluster} (at ${me.currentLsn ?? '?'}),`),
          safety: true,
        });
        decisions.push(d);
        if (d.decision !== 'approve') {
          const because = notApproved(d);
          if (!patched('restore-discard-rejected-stage')) {
            steps.note(
              'result',
              `${because}: nothing was changed (the staged copy stays beside the data directory until a restore uses or replaces it)`,
              'skipped',
            );
            return done('aborted', `nothing was changed: ${node.name} keeps its data`, { abortedBecause: because });
          }
          return keepData(because);
        }
      }
      if (patched('restore-roles-under-lock')) {
        // Right before anything is stopped, under the lock: the roles seen before it may be old.
        // A role that cannot be read counts as a live primary (fails closed).
        let asked = isLivePrimary;
        for (;;) {
          const now = await Promise.all(layout.nodes.map((n) => steps.run(`recheck:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
          const other = now.find((n) => n.node !== node.name && mayBePrimary(n));
          if (other) {
            const left = await discardStage();
            const why = other.reachable
              ? `${other.node} is a live primary of ${cluster}`
              : `the role of ${other.node} cannot be read (${describeNode(other)}), so it may be a live primary of ${cluster}`;
            const next = other.reachable
              ? instead
              : `Bring ${other.node} back so its role can be read (\`switchyard check ${cluster}\`), ` +
                `or take it out of the topology if it is gone for good; then start the restore again.`;
            throw refused(
              `${why} (seen under the lock, right before stopping ${node.name}): ` +
                `restoring ${backupId} onto ${node.name} could start a second primary, so nothing was stopped${left}. ${next}`,
            );
          }
          const mine = now.find((n) => n.node === node.name)!;
          if (asked || !mayBePrimary(mine)) break;
          const seen = mine.reachable
            ? `${node.name} is now the live primary of ${cluster} (at ${mine.currentLsn ?? '?'})`
            : `The role of ${node.name} cannot be read (${describeNode(mine)}): it may be the live primary of ${cluster}`;
          const d = await checkpoints.wait('replace-data', { prompt: replaceData(`${seen}. Replace its data`), safety: true });
          decisions.push(d);
          if (d.decision !== 'approve') return keepData(notApproved(d));
          asked = true; // and read once more: the decision may have taken hours
        }
      }
      const stop = await steps.run(
        'stop',
        () => actions.pgFence({ cluster, node: node.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds }),
        (f) => f.detail,
      );
      if (!stop.fenced)
        throw ApplicationFailure.nonRetryable(`PostgreSQL on ${node.name} did not stop (${stop.detail}): nothing was replaced`, 'RestoreStopped');
      const swap = await steps
        .run(
          'swap',
          () => copying.pgRestoreSwap({ cluster, backupId, node: node.name, ...pitr }),
          (r) => r.detail,
        )
        .catch(async (err: unknown) => {
          // Before the swap the old data directory is in place: start it again so nothing is worse.
          await steps
            .run(
              'undo:start',
              () => actions.pgStart({ cluster, node: node.name }),
              (r) => r.detail,
            )
            .catch(() => undefined);
          throw err;
        });
      const start = await steps.run(
        'start',
        () => promotion.pgStart({ cluster, node: node.name }),
        (r) => r.detail,
      );
      // Point in time: it replays the staged WAL to the target and promotes; then its recovery settings are reset.
      const reached =
        targetTime !== undefined
          ? await steps.run(
              'replay',
              () => copying.pgRestorePitrFinish({ cluster, backupId, node: node.name, targetTime }),
              (r) => r.detail,
            )
          : null;
      const status = await steps.run('verify', () => reads.pgStatus({ cluster, node: node.name }), describeNode);
      const probe =
        status.reachable && status.inRecovery === false
          ? await steps.run(
              'write-probe',
              () => reads.pgWriteProbe({ cluster, node: node.name }),
              (p) => p.detail,
            )
          : null;
      const others = layout.nodes.filter((n) => n.name !== node.name).map((n) => n.name);
      const verified = status.reachable && status.inRecovery === false && probe?.ok === true;
      const rebuild = others.length ? ` ${others.join(', ')} no longer follow it: rebuild with \`switchyard rejoin ${cluster} --node ${others[0]}\`.` : '';
      const state = verified
        ? `${node.name} runs from backup ${backupId} (${manifest.finishedAt})${reached ? ` replayed to ${targetTime} (last transaction ${reached.reached.lastReplayAt ?? 'none after the backup'})` : ''} and takes writes; ` +
          `its old data directory is at ${swap.movedAside ?? '(there was none)'}.${rebuild}`
        : `${node.name} was restored from ${backupId} but is not verified (${describeNode(status)}; ${start.detail}); ` +
          `its old data directory is at ${swap.movedAside ?? '(none)'}`;
      steps.note('result', state, verified ? 'done' : 'failed');
      await notify(verified ? 'restore.completed' : 'restore.unverified', `restore of ${cluster}: ${state}`);
      const result = done('completed', state, { movedAside: swap.movedAside, ...(reached ? { reached: reached.reached } : {}) });
      if (!verified)
        throw ApplicationFailure.create({
          message: `restore of ${backupId} onto ${node.name} did not verify: ${state}`,
          type: 'RestoreUnverified',
          nonRetryable: true,
          details: [result],
        });
      return result;
    });
  }

  // ---- EBS -------------------------------------------------------------------------------------
  const plan: EbsRestorePlan = await steps.run(
    'catalog:ebs',
    () => calls.ebsRestorePlan({ cluster, backupId, ...inRegion }),
    (p) => p.detail,
  );
  if (plan.restore.node !== node.name) {
    throw refused(
      `the snapshots of backup ${backupId} are of ${plan.restore.node}'s instance, not ${node.name}'s: restore them with target ${plan.restore.node}`,
    );
  }
  const ip = plan.restore.privateIp;
  steps.note(
    'plan',
    `launch an instance of ${node.name}${where} from ${plan.snapshots.length} snapshots of ${backupId} with private IP ${ip ?? '?'}, ` +
      `${plan.restore.instanceType ?? '?'} in ${plan.restore.subnetId ?? '?'}` +
      (plan.ipHeldBy ? `; ${plan.ipHeldBy.instanceId} (${plan.ipHeldBy.state}) still holds ${ip}` : ''),
  );
  if (dryRun) {
    const p: PlanStep[] = [
      { step: 'lock', target: cluster, action: 'take the cluster lock' },
      ...(plan.ipHeldBy
        ? [
            { step: 'checkpoint:replace-instance', target: plan.ipHeldBy.instanceId, action: `a person approves terminating it (it holds ${ip})` },
            { step: 'terminate', target: plan.ipHeldBy.instanceId, action: 'terminate and wait until terminated' },
          ]
        : []),
      { step: 'launch', target: node.name, action: `register an image from the snapshots${where}, launch it with ${ip ?? 'its recorded address'}` },
    ];
    steps.note('plan', p.map((x) => `${x.step} → ${x.action}`).join('; '));
    return done('planned', 'dry run: nothing was changed', { plan: p });
  }
  return withClusterLock(cluster, 'restore', requestedBy, steps, async () => {
    await notify('restore.started', `restore of ${node.name}'s instance from snapshots ${backupId} (${cluster}) started by ${requestedBy} (${workflowId})`);
    let replaced: string | null = null;
    // Looked at again under the lock: the holder may have gone meanwhile.
    const now = await steps.run(
      'ip-holder',
      () => calls.ebsRestorePlan({ cluster, backupId, ...inRegion }),
      (p) => (p.ipHeldBy ? `${p.ipHeldBy.instanceId} (${p.ipHeldBy.state}) holds ${ip}` : `nothing holds ${ip}`),
    );
    if (now.ipHeldBy) {
      const holder = now.ipHeldBy;
      const d = await checkpoints.wait('replace-instance', {
        prompt:
          `Instance ${holder.instanceId}${holder.node ? ` (${holder.node})` : ''}, ${holder.state}, still holds ${ip}, ` +
          `the address backup ${backupId} restores. ` +
          `Terminate it and launch ${node.name} from the snapshots? Its volumes are deleted with it unless they were kept. Reject to change nothing.`,
        safety: true,
      });
      decisions.push(d);
      if (d.decision !== 'approve') {
        const because = notApproved(d);
        steps.note('result', `${because}: nothing was terminated or launched`, 'skipped');
        return done('aborted', `nothing was changed: ${holder.instanceId} still holds ${ip}`, { abortedBecause: because });
      }
      await steps.run(
        'terminate',
        () => calls.ebsTerminateInstance({ cluster, instanceId: holder.instanceId, ...inRegion }),
        (r) => r.detail,
      );
      replaced = holder.instanceId;
    }
    const launched = await steps.run(
      'launch',
      () => copying.ebsRestoreInstance({ cluster, backupId, token: workflowId, requestedBy, ...inRegion }),
      (r) => r.detail,
    );
    const state =
      `${node.name} runs on ${launched.instanceId} (${launched.privateIp ?? '?'})${where} ` +
      `launched from backup ${backupId}${replaced ? `, replacing ${replaced}` : ''}; ` +
      `move traffic drivers that named the old instance (Elastic IP, private IP) with \`switchyard failover\` or \`switchover\` if needed`;
    steps.note('result', state);
    await notify('restore.completed', `restore of ${cluster}: ${state}`);
    return done('completed', state, { instance: { instanceId: launched.instanceId, privateIp: launched.privateIp, imageId: launched.imageId, replaced } });
  });
}
