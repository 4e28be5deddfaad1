/**
 * What every traffic driver shares: its topology type, what a failed read means (thrown for a
 * move, reported as data for a plain read), the read-back check after a move, and, for the EC2
 * drivers, the one instance of the node at the target site.
 */
import type { EC2Client, Instance } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import type { TrafficDriverConfig } from '../../topology/schema';
import type { TrafficState } from '../../contract/observations';
import { errorMessage } from '../activity-context';
import type { Call } from '../runtime';
import { nodeInstances, theInstance, type NodeInstance } from '../ec2';
import { SshConnectError } from '../ssh/exec';

export type Driver<K extends TrafficDriverConfig['kind']> = Extract<TrafficDriverConfig, { kind: K }>;

/** A read that failed: `strict` (for moves) and ApplicationFailures throw it, otherwise it is reported (site null, detail says why). */
export function readFailure(d: TrafficDriverConfig, err: unknown, strict: boolean): TrafficState {
  if (strict || err instanceof ApplicationFailure) throw err instanceof SshConnectError ? err.toActionError() : err;
  return { driver: d.name, kind: d.kind, site: null, target: null, detail: `cannot read: ${errorMessage(err)}` };
}

/** Throws (retryably) unless the state read back after a move points at `site`; `did` says what the move did. */
export function assertPointsAt(after: TrafficState, site: string, did: string): void {
  if (after.site !== site)
    throw new Error(`traffic driver "${after.driver}" still does not point at site "${site}" after the move (${did}); read back: ${after.detail}`);
}

/** The state read back after a move that changed it, checked to point at `site`. */
export function verified(after: TrafficState, site: string, did: string): TrafficState {
  assertPointsAt(after, site, did);
  return { ...after, changed: true, detail: `${did}; now ${after.detail}` };
}

/** The one instance of the database node at `site` (and every node's instances); otherwise says why `what` cannot move there. */
export async function siteInstance(
  ec2: EC2Client,
  call: Call,
  cluster: string,
  site: string,
  what: string,
): Promise<{ node: string; nis: NodeInstance[]; instance: Instance }> {
  const [node] = call.top.nodeOfSite(cluster, site);
  const nis = await nodeInstances(ec2, call.top.cluster(cluster));
  const one = theInstance(nis.find((n) => n.node === node) as NodeInstance);
  if ('problem' in one) throw new Error(`cannot move ${what} to site "${site}": ${one.problem}`);
  return { node, nis, instance: one.instance };
}
