/**
 * What every mutating runbook shares: activity option sets, refusals, aborts, and how a node's
 * state reads in a step log.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { ACTION, NOTIFY, PROMOTION, READ } from './activity-options';
import type { StartProof } from '../../contract/decision-proof';
import type { PgNodeStatus } from '../../contract/observations';
import { messageOf, type StepLog } from './steps';

export { NON_RETRYABLE } from './activity-options';

export const reads = proxyActivities<Activities>(READ);
export const actions = proxyActivities<Activities>(ACTION);
export const promotion = proxyActivities<Activities>(PROMOTION);
export const notifier = proxyActivities<Activities>(NOTIFY);

/** A refused precondition: the run stops, nothing is promoted, the message says what to do. */
export function refused(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'PreconditionFailed');
}

export class Aborted extends Error {
  constructor(readonly because: string) {
    super(because);
  }
}

export function describeNode(n: PgNodeStatus): string {
  if (!n.reachable) {
    const kind =
      n.unreachable === 'refused'
        ? 'refused: nothing listens there'
        : n.unreachable === 'no-answer'
          ? 'no answer at all'
          : n.unreachable === 'unknown'
            ? 'UNKNOWN: something answers, its role cannot be read'
            : null;
    return `unreachable: ${n.error ?? 'no answer'}${kind ? ` (${kind})` : ''}`;
  }
  if (n.inRecovery)
    return (
      `standby on timeline ${n.timeline ?? '?'}, received ${n.receiveLsn ?? '?'}, replayed ${n.replayLsn ?? '?'}, ` +
      `WAL receiver ${n.walReceiver?.status ?? 'not running'}`
    );
  return `primary at ${n.currentLsn ?? '?'} on timeline ${n.timeline ?? '?'}`;
}

export function seconds(fromMs: number, toMs: number): number {
  return Math.round((toMs - fromMs) / 100) / 10;
}

/** The fields every runbook input has, checked with messages that say what is missing. */
export function runbookInput(operation: string, input: unknown): { cluster: string; requestedBy: string; dryRun: boolean; startProof?: StartProof } {
  if (!input || typeof input !== 'object')
    throw ApplicationFailure.nonRetryable(`${operation} input must be an object { cluster, requestedBy, … }`, 'ConfigError');
  const i = input as { cluster?: unknown; requestedBy?: unknown; dryRun?: unknown; startProof?: StartProof };
  const cluster = typeof i.cluster === 'string' ? i.cluster : '';
  if (!cluster) throw ApplicationFailure.nonRetryable(`${operation} input needs "cluster": the name of the cluster`, 'ConfigError');
  const requestedBy = typeof i.requestedBy === 'string' ? i.requestedBy.trim() : '';
  if (!requestedBy) throw ApplicationFailure.nonRetryable(`${operation} input needs "requestedBy": the name of the person starting the run`, 'ConfigError');
  return { cluster, requestedBy, dryRun: i.dryRun === true, ...(i.startProof ? { startProof: i.startProof } : {}) };
}

/** A notification through the cluster's webhook, when it has one; never fails the run. */
export function notifyVia(
  hasWebhook: boolean,
  cluster: string,
  workflowId: string,
): (event: string, text: string, fields?: Record<string, string>) => Promise<unknown> {
  return (event, text, fields) =>
    hasWebhook ? notifier.notify({ cluster, event, text, fields: { workflowId, ...fields } }).catch(() => undefined) : Promise.resolve(undefined);
}

/** The one primary among the observed nodes (reachable, out of recovery), or a refusal saying what was seen. */
export function onePrimary(cluster: string, nodes: PgNodeStatus[], except?: string): PgNodeStatus {
  const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false && n.node !== except);
  if (primaries.length === 1) return primaries[0];
  const seen = nodes.map((n) => `${n.node}: ${describeNode(n)}`).join('; ');
  if (primaries.length === 0) throw refused(`cluster ${cluster} has no reachable primary${except ? ` other than ${except}` : ''} (${seen})`);
  throw refused(`cluster ${cluster} has ${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')}): a split brain needs a person (${seen})`);
}

/** Something a runbook changed before promotion, and how to put it back. */
export interface Undo {
  what: string;
  run: () => Promise<string>;
}

/** Undo, newest first, each best effort and each a step; what was and was not undone. */
export async function runUndo(steps: StepLog, undo: Undo[]): Promise<{ done: string[]; failed: string[] }> {
  const done: string[] = [];
  const failed: string[] = [];
  for (const u of [...undo].reverse()) {
    try {
      await steps.run(`undo:${u.what}`, u.run, (d) => d);
      done.push(u.what);
    } catch (err) {
      failed.push(`${u.what} (${messageOf(err as Error)})`);
    }
  }
  return { done, failed };
}
