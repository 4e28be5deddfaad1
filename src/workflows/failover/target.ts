/**
 * Which standby a failover promotes, from the preflight's status reads: `to` when given, else the
 * one node in recovery. Every refusal says what was seen and what to do.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { PgNodeStatus } from '../../contract/observations';
import { describeNode, refused } from '../lib/runbook';
import type { Ctx } from './types';

/** The standby to promote; with the patch, `to` naming the site already promoted resumes. */
export function pickTarget(c: Ctx, nodes: PgNodeStatus[]): { node: PgNodeStatus; resume: boolean } {
  const { cluster, layout, input } = c;
  const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false);
  let candidates = nodes.filter((n) => n.reachable && n.inRecovery === true);
  const finish = (site: string) => `If a failover promoted it and did not finish, \`switchyard failover ${cluster} --to ${site}\` finishes it.`;
  const splitBrain = () =>
    refused(`cluster ${cluster} has ${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')}): a split brain needs a person, not a failover.`);
  if (input.to !== undefined) {
    if (!layout.sites.includes(input.to))
      throw ApplicationFailure.nonRetryable(`unknown site "${input.to}" for "to"; sites of ${cluster}: ${layout.sites.join(', ')}`, 'ConfigError');
    const want = nodes.find((n) => n.site === input.to)!;
    if (want.reachable && want.inRecovery === false) {
      if (c.v2) {
        if (primaries.length > 1) throw splitBrain();
        return { node: want, resume: true };
      }
      throw refused(
        `${want.node} at ${input.to} is already a primary (timeline ${want.timeline ?? '?'}): there is nothing to fail over to. ` +
          `If a former primary needs rebuilding, run \`switchyard rejoin ${cluster}\`.`,
      );
    }
    candidates = candidates.filter((n) => n.site === input.to);
    if (candidates.length === 0)
      throw refused(
        `${want.node} at ${input.to} cannot be promoted: ${want.reachable ? 'it is not in recovery' : `it is unreachable (${want.error ?? 'no answer'})`}.`,
      );
  }
  if (primaries.length > 1) throw splitBrain();
  if (candidates.length === 0) {
    const seen = nodes.map((n) => `${n.node}: ${describeNode(n)}`).join('; ');
    if (primaries.length === 1)
      throw refused(
        `no standby to promote: the only reachable primary is ${primaries[0].node} and no node is a reachable standby (${seen}).` +
          (c.v2 ? ` ${finish(primaries[0].site)}` : ''),
      );
    throw refused(`no reachable standby to promote in cluster ${cluster} (${seen}).`);
  }
  if (candidates.length > 1) throw refused(`several standbys could be promoted (${candidates.map((n) => n.node).join(', ')}): name the site with "to".`);
  return { node: candidates[0], resume: false };
}
