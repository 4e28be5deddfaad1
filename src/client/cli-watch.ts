/**
 * `switchyard watch <cluster> [--every 5s] [--failures 3]` starts the cluster's watch (one per
 * cluster: its workflow id is fixed); `watch status <cluster>`, `watch stop <cluster>` and
 * `watch list` read and end them.
 */
import type { Command } from 'commander';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { watchStatusQuery, watchWorkflowId, type WatchInput, type WatchStatus } from '../contract/watch';
import { TASK_QUEUE } from '../temporal-target';
import { durationSeconds, DURATION_RE } from '../topology/schema';
import { findConfig, requireCluster, target, UsageError, type GlobalOpts } from './cli-common';
import { withClient } from './runs';

const VERBS = ['status', 'stop', 'list'];

export function registerWatchCommand(program: Command, defaultUser: () => string): void {
  program
    .command('watch <clusterOrVerb> [cluster]')
    .description('watch a cluster: probe its primary every interval, stage a failover after repeated failures (also: watch status|stop <cluster>, watch list)')
    .option('--every <duration>', 'time between probes, e.g. 5s', '5s')
    .option('--failures <n>', 'consecutive failed probes before a failover is staged', '3')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--json', 'print JSON')
    .action(async (first: string, second: string | undefined, o: { every: string; failures: string; as?: string; json?: boolean }, cmd: Command) => {
      const verb = VERBS.includes(first) ? first : 'start';
      const cluster = verb === 'start' ? first : second;
      if (verb !== 'list' && !cluster) throw new UsageError(`watch ${verb}: which cluster? (switchyard watch ${verb} <cluster>)`);
      if (cluster) requireCluster(await findConfig(cmd.optsWithGlobals<GlobalOpts>().config), cluster);
      await withClient(target(cmd), async (client) => {
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
          await client.workflow.getHandle(id).signal('stop', { by: o.as ?? defaultUser() });
          process.stdout.write(`asked ${id} to stop\n`);
          return;
        }
        if (!DURATION_RE.test(o.every)) throw new UsageError(`--every ${o.every}: expected a duration such as 5s or 1m`);
        const failures = Number(o.failures);
        if (!Number.isInteger(failures) || failures < 1 || failures > 100) throw new UsageError(`--failures ${o.failures}: expected an integer from 1 to 100`);
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
    });
}

export function formatWatch(s: WatchStatus): string {
  const lines = [
    `watch of ${s.cluster}: primary ${s.primary ?? 'unknown'}; ${s.consecutiveFailures} failed probe(s) in a row (a failover is staged at ${s.failuresToStage}); every ${s.everySeconds} s since ${s.since}`,
  ];
  for (const p of s.probes) lines.push(`  ${p.node.padEnd(10)} ${p.verdict.padEnd(9)} ${p.detail}`);
  if (s.staged) lines.push(`staged failover: ${s.staged.workflowId} (at ${s.staged.at})`);
  lines.push(`last: ${s.last}`);
  return `${lines.join('\n')}\n`;
}
