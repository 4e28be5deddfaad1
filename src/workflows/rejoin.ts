/**
 * rejoin: make a former primary a standby of the current primary again. Steps:
 *
 *   lock → preflight (the node is not the primary and takes no writes; one primary exists) →
 *   stop it → replication slot on the primary → pg_rewind (fast path) or pg_basebackup -X fetch
 *   into a fresh directory (the old one moved aside, never deleted) → configuration files copied
 *   from the primary's host → standby.signal, primary_conninfo, primary_slot_name → start → wait
 *   until it streams with lag below the bound.
 *
 * `method: "auto"` (the default) falls back to a base backup when the rewind fails or the
 * rewound node cannot stream. Every step is check-then-act, so a resumed run repeats no harm: a
 * node that already streams from the primary is done.
 */
import { ApplicationFailure, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { PgBasebackupResult, PgNodeStatus, PgRewindResult } from '../contract/observations';
import { withClusterLock } from './lib/with-cluster-lock';
import { actions, describeNode, notifyVia, onePrimary, reads, refused, runbookInput, seconds } from './lib/runbook';
import { StepLog } from './lib/steps';
import type { PlanStep, StepRecord } from '../contract/messages';
import { REJOIN_COPY } from './lib/activity-options';

export type RejoinMethod = 'auto' | 'rewind' | 'basebackup';

export interface RejoinInput {
  cluster: string;
  /** The database node to make a standby again. */
  node: string;
  requestedBy: string;
  method?: RejoinMethod;
  dryRun?: boolean;
  /** Set by a parent runbook (failback) that holds the cluster's lock; refused for a top-level run. */
  underParentLock?: boolean;
}

export interface RejoinResult {
  cluster: string;
  node: string;
  outcome: 'completed' | 'already' | 'planned';
  /** The method that made the node a standby (null: nothing to do, or a dry run). */
  method: 'rewind' | 'basebackup' | null;
  /** Why the base backup ran when the rewind was tried first. */
  fellBackBecause: string | null;
  /** WAL the rewind discarded: what the former primary wrote after it was cut off (bytes). */
  divergedBytes: number | null;
  divergedAtLsn: string | null;
  /** Data directories moved aside by a base backup (still on disk). */
  movedAside: string[];
  primary: { node: string; site: string };
  lagBytes: number | null;
  durationSeconds: number;
  /** How long the rewind or base backup itself took. */
  copySeconds: number | null;
  plan: PlanStep[];
  steps: StepRecord[];
}

const copying = proxyActivities<Activities>(REJOIN_COPY);

/** What a rejoin did; what it does not name is what a run that copied nothing would say. */
interface RejoinOutcome {
  outcome: RejoinResult['outcome'];
  method: RejoinResult['method'];
  lagBytes: number | null;
  durationSeconds: number;
  fellBackBecause?: string | null;
  divergedBytes?: number | null;
  divergedAtLsn?: string | null;
  movedAside?: string[];
  copySeconds?: number;
  plan?: PlanStep[];
}

/** The one place a rejoin's result is built, with the step log as it is now. */
function rejoinResult(run: Pick<RejoinResult, 'cluster' | 'node' | 'primary'> & { steps: StepLog }, o: RejoinOutcome): RejoinResult {
  return {
    cluster: run.cluster,
    node: run.node,
    primary: run.primary,
    fellBackBecause: o.fellBackBecause ?? null,
    divergedBytes: o.divergedBytes ?? null,
    divergedAtLsn: o.divergedAtLsn ?? null,
    movedAside: o.movedAside ?? [],
    copySeconds: o.copySeconds ?? null,
    plan: o.plan ?? [],
    outcome: o.outcome,
    method: o.method,
    lagBytes: o.lagBytes,
    durationSeconds: o.durationSeconds,
    steps: run.steps.snapshot(),
  };
}

export async function rejoin(input: RejoinInput): Promise<RejoinResult> {
  const { cluster, requestedBy, dryRun } = runbookInput('rejoin', input);
  const steps = new StepLog('rejoin', cluster);
  const method: RejoinMethod = input.method ?? 'auto';
  if (!['auto', 'rewind', 'basebackup'].includes(method))
    throw ApplicationFailure.nonRetryable(`rejoin "method" must be "auto", "rewind" or "basebackup", got ${JSON.stringify(input.method)}`, 'ConfigError');
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.nodes.length} database nodes`,
  );
  const node = layout.nodes.find((n) => n.name === input.node);
  if (!node)
    throw ApplicationFailure.nonRetryable(
      `unknown database node ${JSON.stringify(input.node)} in cluster "${cluster}"; known: ${layout.nodes.map((n) => `"${n.name}"`).join(', ')}`,
      'ConfigError',
    );
  const notify = notifyVia(layout.notify, cluster, workflowInfo().workflowId);
  const startedMs = Date.now();
  // A node that is a standby again loses the fence marker a failover left, and the guard stops
  // watching it. Decided once, at the start (recorded runs replay without it).
  const clearsFence = patched('rejoin-clears-fence');
  const unfenced = async (how: string) => {
    if (!clearsFence || dryRun) return;
    await steps.run(
      'clear-fence',
      () => actions.fenceClear({ cluster, node: node.name }),
      (r) => r.detail,
    );
    await steps.run(
      'guard-release',
      () => actions.guardRelease({ cluster, node: node.name, by: workflowInfo().workflowId, reason: how }),
      (r) => r.detail,
    );
  };

  const body = async (): Promise<RejoinResult> => {
    const nodes = await Promise.all(layout.nodes.map((n) => steps.run(`preflight:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
    const me = nodes.find((n) => n.node === node.name)!;
    if (me.reachable && me.inRecovery === false) {
      const others = nodes.filter((n) => n.node !== node.name && n.reachable && n.inRecovery === false);
      throw refused(
        others.length === 0
          ? `${node.name} is the current primary of ${cluster} (${describeNode(me)}): a primary is not rejoined. To move the primary elsewhere, use switchover.`
          : `${node.name} still accepts writes as a primary (${describeNode(me)}) while ${others.map((o) => o.node).join(', ')} is primary too: ` +
              `fence it (stop PostgreSQL on it) before rejoining it, so no write is taken there meanwhile.`,
      );
    }
    const primary = onePrimary(cluster, nodes, node.name);
    const pNode = layout.nodes.find((n) => n.name === primary.node)!;
    const run = { cluster, node: node.name, primary: { node: pNode.name, site: pNode.site }, steps };
    if (streamsFrom(me, pNode)) {
      const lag = await steps.run(
        `lag:${node.name}`,
        () => reads.pgLag({ cluster, primary: pNode.name, standby: node.name }),
        (l) => `${l.lagBytes ?? '?'} bytes behind`,
      );
      if (!dryRun)
        await steps.run(
          'slot',
          () => actions.pgEnsureSlot({ cluster, primary: pNode.name, slot: node.slot }),
          (r) => r.detail,
        );
      await unfenced(`streams from ${pNode.name} as a standby`);
      steps.note('result', `${node.name} already streams from ${pNode.name}: nothing to do`);
      return rejoinResult(run, {
        outcome: dryRun ? 'planned' : 'already',
        method: null,
        lagBytes: lag.lagBytes,
        durationSeconds: seconds(startedMs, Date.now()),
      });
    }
    if (dryRun) {
      const plan: PlanStep[] = [
        { step: 'lock', target: cluster, action: 'take the cluster lock' },
        { step: 'stop', target: node.name, action: me.reachable ? 'stop PostgreSQL (pg_ctl stop -m fast)' : 'make sure PostgreSQL is stopped' },
        { step: 'slot', target: pNode.name, action: `create replication slot ${node.slot} unless it exists` },
        method === 'basebackup'
          ? { step: 'basebackup', target: node.name, action: `move the data directory aside, pg_basebackup -X fetch from ${pNode.name}` }
          : {
              step: 'rewind',
              target: node.name,
              action: `pg_rewind from ${pNode.name}${method === 'auto' ? '; on failure, a base backup (old directory moved aside)' : ''}`,
            },
        { step: 'config-files', target: node.name, action: `copy the listed configuration files from ${pNode.sshHost}` },
        { step: 'configure', target: node.name, action: `standby.signal, primary_conninfo to ${pNode.name}, primary_slot_name ${node.slot}` },
        { step: 'start', target: node.name, action: 'start PostgreSQL' },
        { step: 'catch-up', target: node.name, action: `wait until it streams with lag below ${layout.maxLagBytes} bytes` },
      ];
      steps.note('plan', plan.map((p) => `${p.step} → ${p.action}`).join('; '));
      return rejoinResult(run, { outcome: 'planned', method: null, lagBytes: null, durationSeconds: 0, plan });
    }

    await notify('rejoin.started', `rejoin of ${node.name} to follow ${pNode.name} started by ${requestedBy}`);
    await steps
      .run(
        'stop',
        () => actions.pgFence({ cluster, node: node.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds }),
        (f) => f.detail,
      )
      .then((f) => {
        if (!f.stopped) throw refused(`${node.name} could not be stopped before the rejoin: ${f.detail}`);
      });
    await steps.run(
      'slot',
      () => actions.pgEnsureSlot({ cluster, primary: pNode.name, slot: node.slot }),
      (r) => r.detail,
    );

    let used: 'rewind' | 'basebackup' = method === 'basebackup' ? 'basebackup' : 'rewind';
    let fellBackBecause: string | null = null;
    let rewind: PgRewindResult | null = null;
    let backup: PgBasebackupResult | null = null;
    let copyMs = 0;
    for (;;) {
      if (used === 'rewind') {
        rewind = await steps.run(
          'rewind',
          () => copying.pgRewind({ cluster, node: node.name, source: pNode.name }),
          (r) => r.detail,
        );
        copyMs += rewind.durationMs;
        if (!rewind.ok) {
          if (method === 'rewind')
            throw ApplicationFailure.nonRetryable(
              `pg_rewind of ${node.name} from ${pNode.name} failed: ${rewind.detail}. ` +
                `Rejoin with method "basebackup" (the data directory is moved aside, not deleted).`,
              'RewindFailed',
            );
          fellBackBecause = `pg_rewind failed: ${rewind.detail}`;
          used = 'basebackup';
          continue;
        }
      } else {
        backup = await steps.run(
          'basebackup',
          () => copying.pgBasebackup({ cluster, node: node.name, source: pNode.name }),
          (r) => r.detail,
        );
        copyMs += backup.durationMs;
      }
      await steps.run(
        'config-files',
        () => actions.copyConfigFiles({ cluster, node: node.name, from: pNode.name }),
        (r) => (r.files.length ? r.files.map((f) => `${f.target} ${f.changed ? 'copied' : 'unchanged'} (${f.bytes} bytes)`).join(', ') : 'none listed'),
      );
      await steps.run(
        'configure',
        () => actions.pgConfigureStandby({ cluster, node: node.name, primary: pNode.name }),
        (r) => r.detail,
      );
      await steps.run(
        'start',
        () => actions.pgStart({ cluster, node: node.name }),
        (r) => r.detail,
      );
      const caught = await steps.run(
        'catch-up',
        () =>
          copying.pgWaitStreaming({
            cluster,
            node: node.name,
            primary: pNode.name,
            maxLagBytes: layout.maxLagBytes,
            timeoutSeconds: layout.rejoin.catchUpTimeoutSeconds,
          }),
        (r) => r.detail,
      );
      if (caught.streaming) {
        await unfenced(`was rejoined (${used}) and streams from ${pNode.name}`);
        const divergedBytes = used === 'rewind' ? (rewind?.divergedBytes ?? null) : null;
        const durationSeconds = seconds(startedMs, Date.now());
        const discarded = used === 'rewind' && divergedBytes !== null ? `, which discarded ${divergedBytes} bytes of diverged WAL` : '';
        const fellBack = fellBackBecause ? ` (fell back: ${fellBackBecause})` : '';
        steps.note('result', `${node.name} streams from ${pNode.name} (${caught.lagBytes ?? '?'} bytes behind) after ${used}${discarded}${fellBack}`);
        await notify('rejoin.completed', `${node.name} is a standby of ${pNode.name} again (${used})`);
        return rejoinResult(run, {
          outcome: 'completed',
          method: used,
          fellBackBecause,
          divergedBytes,
          divergedAtLsn: used === 'rewind' ? (rewind?.divergedAtLsn ?? null) : null,
          movedAside: backup?.movedAside ?? [],
          lagBytes: caught.lagBytes,
          durationSeconds,
          copySeconds: Math.round(copyMs / 100) / 10,
        });
      }
      if (used === 'rewind' && method === 'auto') {
        fellBackBecause = `after pg_rewind ${node.name} did not stream: ${caught.detail}`;
        await steps.run(
          'stop',
          () => actions.pgFence({ cluster, node: node.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds }),
          (f) => f.detail,
        );
        used = 'basebackup';
        continue;
      }
      throw ApplicationFailure.nonRetryable(
        `${node.name} was rebuilt by ${used} and started, but does not stream from ${pNode.name}: ${caught.detail}`,
        'RejoinIncomplete',
      );
    }
  };
  if (dryRun) return body();
  return withClusterLock(cluster, 'rejoin', requestedBy, steps, body, { underParentLock: input.underParentLock === true });
}

/** Is this node a standby streaming from that primary? */
function streamsFrom(n: PgNodeStatus, primary: { host: string; port: number }): boolean {
  return (
    n.reachable &&
    n.inRecovery === true &&
    n.walReceiver?.status === 'streaming' &&
    n.walReceiver.senderHost === primary.host &&
    (n.walReceiver.senderPort ?? 5432) === primary.port
  );
}
