/**
 * The watch as first released (worker-only probes of each node's status, no vantage points,
 * warnings or automatic mode): kept, unchanged, so that its recorded runs replay. A run of it
 * continues as new into the current watch (./watch.ts). Remove it with deprecatePatch once no
 * such run is left.
 */
import { condition, continueAsNew, ParentClosePolicy, proxyActivities, setHandler, startChild } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { PgNodeStatus } from '../contract/observations';
import { watchStatusQuery, watchStopSignal, type WatchInput, type WatchProbe, type WatchStatus } from '../contract/watch';
import { READ } from './lib/activity-options';
import { describeNode, notifyVia } from './lib/runbook';
import { messageOf, StepLog } from './lib/steps';
import { watchSettings } from './lib/watch-input';
import type { failover as failoverWorkflow } from './failover';

const reads = proxyActivities<Activities>(READ);

function verdictOf(n: PgNodeStatus | { node: string; error: string }): WatchProbe {
  if ('error' in n && !('reachable' in n)) return { node: n.node, verdict: 'unknown', detail: `the probe failed: ${n.error}` };
  const s = n as PgNodeStatus;
  if (s.reachable) return { node: s.node, verdict: s.inRecovery ? 'standby' : 'primary', detail: describeNode(s) };
  return { node: s.node, verdict: s.unreachable ?? 'unknown', detail: describeNode(s) };
}

export async function watchV1(input: WatchInput): Promise<{ stoppedBy: string }> {
  const { cluster, everySeconds, failuresToStage, ticksPerRun, carry } = watchSettings(input);
  const steps = new StepLog('watch', cluster);
  const status: WatchStatus = {
    cluster,
    everySeconds,
    failuresToStage,
    since: carry.since,
    ticks: carry.ticks,
    primary: carry.primary,
    consecutiveFailures: carry.consecutiveFailures,
    lastProbeAt: null,
    probes: [],
    staged: carry.staged,
    last: input.carry ? 'continued' : 'started',
    // Fields of the current watch's status, which this one does not keep.
    verdict: 'starting',
    confirmedFailures: carry.consecutiveFailures,
    vantage: [],
    incidents: [],
    formerPrimaries: [],
    automatic: { enabled: false, coolDownSeconds: 0, antiFlap: { last: null, ackedBy: null, ackedAt: null } },
  };
  let stoppedBy: string | null = null;
  setHandler(watchStatusQuery, () => ({ ...status, probes: status.probes.map((p) => ({ ...p })) }));
  setHandler(watchStopSignal, (s) => void (stoppedBy = typeof s?.by === 'string' && s.by ? s.by : 'someone'));

  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.nodes.map((n) => n.name).join(', ')}; every ${everySeconds} s`,
  );
  const say = (name: string, detail: string, state: 'done' | 'failed' = 'done') => {
    status.last = detail;
    steps.note(name, detail, state);
  };

  for (let tick = 0; tick < ticksPerRun; tick++) {
    const probes = await Promise.all(
      layout.nodes.map((n) => reads.pgStatus({ cluster, node: n.name }).then(verdictOf, (err: Error) => verdictOf({ node: n.name, error: messageOf(err) }))),
    );
    status.ticks++;
    status.lastProbeAt = new Date().toISOString();
    status.probes = probes;
    const primaries = probes.filter((p) => p.verdict === 'primary');
    if (primaries.length === 1) {
      const p = primaries[0].node;
      if (status.consecutiveFailures > 0) say('primary-answers', `${p} answers as the primary again after ${status.consecutiveFailures} failed probe(s)`);
      else if (status.primary !== p) say('primary', `${p} is the primary`);
      status.primary = p;
      status.consecutiveFailures = 0;
      // The outage is over (the staged failover promoted, or the old primary came back).
      status.staged = null;
    } else if (primaries.length > 1) {
      say('split-brain', `${primaries.map((p) => p.node).join(' and ')} both answer as primary: a person must decide`, 'failed');
    } else {
      status.consecutiveFailures++;
      const seen = probes.map((p) => `${p.node}: ${p.detail}`).join('; ');
      if (status.consecutiveFailures === 1) say('primary-fails', `no node answers as the primary (${seen})`, 'failed');
      if (status.consecutiveFailures === failuresToStage) {
        if (status.staged) {
          say(
            'not-staged',
            `the primary failed ${failuresToStage} probes in a row, but failover ${status.staged.workflowId} was staged for this outage at ${status.staged.at}: not staging another`,
          );
        } else {
          const id = `failover-${cluster}-watch-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}`;
          const reason = `watch: no node answered as the primary in ${failuresToStage} probes ${everySeconds} s apart (${seen})`;
          const child = await startChild<typeof failoverWorkflow>('failover', {
            workflowId: id,
            args: [{ cluster, requestedBy: 'watch', reason }],
            parentClosePolicy: ParentClosePolicy.ABANDON,
          });
          status.staged = { workflowId: child.workflowId, at: new Date().toISOString() };
          // How it ends goes to the log (a run that continued as new no longer follows it).
          void child.result().then(
            () => say('staged-ended', `failover ${id} ended`),
            (err: Error) => say('staged-ended', `failover ${id} ended: ${messageOf(err)}`, 'failed'),
          );
          say('staged', `failover ${id} staged: ${reason}`);
          await notifyVia(
            layout.notify,
            cluster,
            id,
          )('watch.failover-staged', `the primary of ${cluster} failed ${failuresToStage} probes: failover ${id} staged, waiting for a person`);
        }
      }
    }
    if (await condition(() => stoppedBy !== null, everySeconds * 1000)) break;
  }
  if (stoppedBy !== null) {
    say('stopped', `stopped by ${stoppedBy}`);
    return { stoppedBy };
  }
  await continueAsNew<typeof watchV1>({
    cluster,
    everySeconds,
    failures: failuresToStage,
    ticksPerRun,
    requestedBy: input.requestedBy,
    carry: { primary: status.primary, consecutiveFailures: status.consecutiveFailures, staged: status.staged, ticks: status.ticks, since: status.since },
  });
  return { stoppedBy: 'unreachable' };
}
