/**
 * walArchive: keeps a cluster's continuous WAL archive (topology `backup.archive`) running and
 * pointed at the primary, for as long as it runs (workflow id `wal-archive-<cluster>`, one per
 * cluster; started by `switchyard archive <cluster>`, stopped by its `stop` signal).
 *
 * Every `intervalSeconds`: read every database node; when exactly one answers as the primary,
 * make sure pg_receivewal streams from it (walArchiveEnsure starts a dead archiver and repoints
 * one that follows a former primary, so after a failover or a switchover the archive continues
 * from the new primary within one interval); with a store, copy finished segments there. No
 * single primary (none answers, or two do) leaves the archiver as it is: following a guess could
 * archive the wrong history. Continues as new every few hundred rounds to keep its history short.
 */
import { ApplicationFailure, condition, continueAsNew, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  walArchiveStatusQuery,
  walArchiveStopSignal,
  type WalArchiveActivities,
  type WalArchiveState,
  type WalArchiveUploadResult,
} from '../contract/wal-archive';
import { BACKUP_CALL, BACKUP_COPY } from './lib/activity-options';
import { reads } from './lib/runbook';

const archiving = proxyActivities<WalArchiveActivities>(BACKUP_CALL);
const uploading = proxyActivities<WalArchiveActivities>(BACKUP_COPY);

export interface WalArchiveInput {
  cluster: string;
  requestedBy?: string;
  /** Stop by itself after this many rounds (tests); default: run until stopped. */
  rounds?: number;
  /** Carried across continue-as-new. */
  state?: WalArchiveState;
}

export interface WalArchiveResult extends WalArchiveState {
  cluster: string;
  stoppedBy: string | null;
  detail: string;
}

const ROUNDS_PER_RUN = 300;

export async function walArchive(input: WalArchiveInput): Promise<WalArchiveResult> {
  if (!input || typeof input.cluster !== 'string' || !input.cluster)
    throw ApplicationFailure.nonRetryable('walArchive input needs "cluster": the name of the cluster', 'ConfigError');
  const cluster = input.cluster;
  // Handlers first: a query or a stop sent right after the start finds them on the first task.
  const state: WalArchiveState = input.state ?? { following: null, events: [], rounds: 0, uploaded: 0, problem: null };
  let stoppedBy: string | null = null;
  setHandler(walArchiveStopSignal, (s) => void (stoppedBy = typeof s?.by === 'string' && s.by ? s.by : 'someone'));
  setHandler(walArchiveStatusQuery, () => JSON.parse(JSON.stringify(state)) as WalArchiveState);
  const layout = await reads.clusterLayout({ cluster });
  const archive = layout.backup?.archive;
  if (!archive)
    throw ApplicationFailure.nonRetryable(
      `cluster ${cluster} has no backup.archive in the topology: WAL archiving (point-in-time recovery) is not configured`,
      'ConfigError',
    );
  for (let i = 0; i < ROUNDS_PER_RUN && stoppedBy === null; i++) {
    state.rounds += 1;
    try {
      const nodes = await Promise.all(layout.nodes.map((n) => reads.pgStatus({ cluster, node: n.name })));
      const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false);
      if (primaries.length === 1) {
        const e = await archiving.walArchiveEnsure({ cluster, node: primaries[0].node });
        state.following = e.node;
        if (e.action !== 'running') {
          state.events.push({ at: new Date().toISOString(), action: e.action, node: e.node, previous: e.previous, detail: e.detail });
          state.events = state.events.slice(-20);
        }
        state.problem = null;
      } else {
        state.problem =
          primaries.length === 0
            ? `no database node answers as the primary: the archiver keeps following ${state.following ?? 'nothing'}`
            : `${primaries.length} nodes answer as the primary (${primaries.map((p) => p.node).join(', ')}): the archiver is left as it is`;
      }
      if (layout.backup?.store) {
        const u: WalArchiveUploadResult = await uploading.walArchiveUpload({ cluster });
        state.uploaded += u.uploaded.length;
      }
    } catch (err) {
      state.problem = `round ${state.rounds}: ${(err as Error).message}`;
    }
    if (input.rounds !== undefined && state.rounds >= input.rounds) break;
    if (await condition(() => stoppedBy !== null, archive.intervalSeconds * 1000)) break;
  }
  const done = stoppedBy !== null || (input.rounds !== undefined && state.rounds >= input.rounds);
  if (!done) {
    await continueAsNew<typeof walArchive>({ ...input, state });
  }
  const stop = stoppedBy !== null ? await archiving.walArchiveStop({ cluster }) : null;
  return {
    cluster,
    ...state,
    stoppedBy,
    detail: `${workflowInfo().workflowId}: ${state.rounds} rounds, following ${state.following ?? 'nothing'}; ${stop ? stop.detail : 'archiver left running'}`,
  };
}
