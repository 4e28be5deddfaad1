/**
 * `switchyard watch <cluster> [--every 5s] [--failures 3]` starts the cluster's watch (one per
 * cluster: its workflow id is fixed); `watch status <cluster>`, `watch stop <cluster>` and
 * `watch list` read and end them.
 */
import type { Command } from 'commander';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { watchAckSignal, watchStatusQuery, watchStopSignal, watchWorkflowId, type WatchInput, type WatchStatus } from '../contract/watch';
import { TASK_QUEUE } from '../temporal-target';
import { durationSeconds, DURATION_RE } from '../topology/schema';
import { findConfig, requireCluster, target, UsageError, type GlobalOpts } from './cli-common';
import { withClient } from './runs';

const VERBS = ['status', 'stop', 'list', 'ack'];

export function registerWatchCommand(program: Command, defaultUser: () => string): void {
  program
    .command('watch <clusterOrVerb> [cluster]')
    .description(
      'watch a cluster: probe it every interval, stage a failover after repeated failures of its primary seen from every site ' +
        '(also: watch status|stop|ack <cluster>, watch list)',
    )
    .option('--every <duration>', 'time between probes, e.g. 5s', '5s')
    .option('--failures <n>', 'consecutive failed probes before a failover is staged', '3')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--comment <text>', 'with ack: a word for the log')
    .option('--json', 'print JSON')
    .action(
      async (
        first: string,
        second: string | undefined,
        o: { every: string; failures: string; as?: string; comment?: string; json?: boolean },
        cmd: Command,
      ) => {
        const verb = VERBS.includes(first) ? first : 'start';
        const cluster = verb === 'start' ? first : second;
        if (verb !== 'list' && !cluster) throw new UsageError(`watch ${verb}: which cluster? (switchyard watch ${verb} <cluster>)`);
        if (cluster) requireCluster(await findConfig(cmd.optsWithGlobals<GlobalOpts>().config), cluster);
        await withClient(await target(cmd), async (client) => {
          if (verb === 'list') {
            const rows: string[] = [];
            for await (const w of client.workflow.list({ query: "WorkflowType = 'watch' AND ExecutionStatus = 'Running'" })) rows.push(w.workflowId);
            process.stdout.write(o.json ? `${JSON.stringify(rows)}\n` : rows.length ? `${rows.join('\n')}\n` : 'no cluster is watched\n');
            return;
          }
          const id = watchWorkflowId(cluster!);
          if (verb === 'status') {
            const s = await client.workflow.getHandle(id).query(watchStatusQuery);
            process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : formatWatch(s));
            return;
          }
          if (verb === 'stop') {
            await client.workflow.getHandle(id).signal(watchStopSignal, { by: o.as ?? defaultUser() });
            process.stdout.write(`asked ${id} to stop\n`);
            return;
          }
          if (verb === 'ack') {
            const h = client.workflow.getHandle(id);
            const before = await h.query(watchStatusQuery);
            const last = before.automatic.antiFlap.last;
            if (!last) {
              process.stdout.write(`no automatic failover of ${cluster} waits for an acknowledgement\n`);
              return;
            }
            if (before.automatic.antiFlap.ackedBy) {
              process.stdout.write(`the automatic failover ${last.workflowId} was already acknowledged by ${before.automatic.antiFlap.ackedBy}\n`);
              return;
            }
            await h.signal(watchAckSignal, { by: o.as ?? defaultUser(), ...(o.comment ? { comment: o.comment } : {}) });
            for (let i = 0; i < 40; i++) {
              const s = await h.query(watchStatusQuery);
              if (s.automatic.antiFlap.ackedBy) {
                process.stdout.write(
                  `acknowledged the automatic failover ${last.workflowId} of ${cluster} (as ${s.automatic.antiFlap.ackedBy}): the next failover may be automatic again\n`,
                );
                return;
              }
              await new Promise((r) => setTimeout(r, 250));
            }
            throw new Error(`${id} did not record the acknowledgement within 10 s; see: switchyard watch status ${cluster}`);
          }
          if (!DURATION_RE.test(o.every)) throw new UsageError(`--every ${o.every}: expected a duration such as 5s or 1m`);
          const failures = Number(o.failures);
          if (!Number.isInteger(failures) || failures < 1 || failures > 100)
            throw new UsageError(`--failures ${o.failures}: expected an integer from 1 to 100`);
          const input: WatchInput = { cluster: cluster!, everySeconds: durationSeconds(o.every), failures, requestedBy: o.as ?? defaultUser() };
          try {
            await client.workflow.start('watch', { taskQueue: TASK_QUEUE, workflowId: id, args: [input] });
            process.stdout.write(`watching ${cluster} as ${id}: every ${input.everySeconds} s, a failover staged after ${failures} failed probes\n`);
          } catch (err) {
            if (err instanceof WorkflowExecutionAlreadyStartedError) {
              process.stdout.write(`${cluster} is already watched (${id}); see: switchyard watch status ${cluster}\n`);
              return;
            }
            throw err;
          }
        });
      },
    );
}

export function formatWatch(s: WatchStatus): string {
  const lines = [
    `watch of ${s.cluster}: ${s.verdict}; primary ${s.primary ?? 'unknown'}; ${s.confirmedFailures} failed probe(s) in a row seen from every site ` +
      `(a failover is staged at ${s.failuresToStage}); every ${s.everySeconds} s since ${s.since}`,
  ];
  for (const p of s.probes) lines.push(`  ${p.node.padEnd(10)} ${p.verdict.padEnd(9)} ${p.detail}`);
  if (s.consecutiveFailures > 0) for (const v of s.vantage) lines.push(`  from ${v.from}: ${v.node} ${v.verdict}: ${v.detail}`);
  for (const f of s.formerPrimaries)
    lines.push(
      `former primary ${f.node} (replaced by ${f.newPrimary} since ${f.since}): ` +
        `${f.fence === 'marked' ? `fenced by ${f.fencedBy}` : f.fence === 'unreadable' ? 'its fence cannot be read (its host does not answer)' : 'NOT fence-marked'}` +
        `${f.answers ? ', answers again' : ''}; needs \`${f.rejoin}\``,
    );
  for (const i of s.incidents.filter((x) => x.notified)) lines.push(`warning since ${i.since}: ${i.detail}`);
  if (s.staged) lines.push(`staged failover: ${s.staged.workflowId} (at ${s.staged.at}${s.staged.automatic ? ', automatic' : ''})`);
  const a = s.automatic;
  if (a.enabled)
    lines.push(
      `automatic mode: on; ${a.antiFlap.last ? `last automatic failover ${a.antiFlap.last.workflowId} at ${a.antiFlap.last.at}, ${a.antiFlap.ackedBy ? `acknowledged by ${a.antiFlap.ackedBy}` : `NOT acknowledged (switchyard watch ack ${s.cluster})`}` : 'no automatic failover yet'}`,
    );
  lines.push(`last: ${s.last}`);
  return `${lines.join('\n')}\n`;
}
