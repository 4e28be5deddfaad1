/**
 * Write downtime of a planned switchover: the `switchover` workflow back and forth between dc1 and
 * dc2 on one sandbox, against the same switch done by hand — the same activities called directly
 * in the order an operator types them (stop the primary fast, wait for the standby to replay its
 * shutdown checkpoint, promote) — interleaved in one run. Both are measured the same way: by
 * writeProbeLoop, a write every 100 ms on whichever node takes it, from the first refused write to
 * the first one the new primary accepted. Prints median, p90 and max of each, and the ratio of
 * the medians.
 *
 *   node --import tsx bench/switchover.ts [rounds=6]
 */
import { createActivities } from '../src/activities';
import { TASK_QUEUE } from '../src/temporal-target';
import { withBenchStage } from './stage';
import type { SwitchoverResult } from '../src/workflows/switchover';

const rounds = Number(process.argv[2] ?? 6);
const cluster = 'demo';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const fmt = (xs: number[]) =>
  `median ${pct(xs, 50).toFixed(0)} ms, p90 ${pct(xs, 90).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms  [${xs.map((x) => x.toFixed(0)).join(', ')}]`;

async function main() {
  await withBenchStage(30, async ({ worker, client, topology }) => {
    const acts = createActivities({ topology: () => topology });
    const nodeOf = (site: string) => Object.entries(topology.clusters[cluster].postgres.nodes).find(([, n]) => n.site === site)![0];

    /** The same switch by hand: stop fast, wait for replay, promote; then the old primary follows. */
    const byHand = async (from: string, to: string): Promise<number> => {
      const [oldNode, newNode] = [nodeOf(from), nodeOf(to)];
      const probing = acts.writeProbeLoop({ cluster, expectNode: newNode, maxSeconds: 120, intervalMs: 100 });
      await new Promise((r) => setTimeout(r, 500)); // the probes see the old primary take writes first
      const stop = await acts.pgFence({ cluster, node: oldNode, fastTimeoutSeconds: 20 });
      const ckpt = stop.control?.checkpointLsn;
      if (!stop.fenced || !ckpt) throw new Error(`by hand: ${oldNode} did not stop cleanly: ${stop.detail}`);
      const replay = await acts.pgWaitReplay({ cluster, node: newNode, lsn: ckpt, timeoutSeconds: 120 });
      if (!replay.reached) throw new Error(`by hand: ${newNode} did not replay to ${ckpt}`);
      await acts.pgPromote({ cluster, node: newNode, waitSeconds: 60 });
      const probe = await probing;
      // Put the cluster in the shape the next round expects (not measured).
      await acts.pgEnsureSlot({ cluster, primary: newNode, slot: topology.clusters[cluster].postgres.nodes[oldNode].slot });
      await acts.pgConfigureStandby({ cluster, node: oldNode, primary: newNode });
      await acts.pgStart({ cluster, node: oldNode });
      const s = await acts.pgWaitStreaming({ cluster, node: oldNode, primary: newNode, timeoutSeconds: 120 });
      if (!s.streaming) throw new Error(`by hand: ${oldNode} does not follow ${newNode}: ${s.detail}`);
      for (const d of topology.clusters[cluster].traffic) await acts.trafficMove({ cluster, driver: d.name, site: to });
      if (probe.downtimeMs === null) throw new Error(`by hand: the probes saw no recovery: ${probe.detail}`);
      return probe.downtimeMs;
    };

    const viaWorkflow: number[] = [];
    const viaHand: number[] = [];
    let site = 'dc1';
    await worker.runUntil(async () => {
      for (let i = 0; i < rounds; i++) {
        const to = site === 'dc1' ? 'dc2' : 'dc1';
        const r = (await client.workflow.execute('switchover', {
          taskQueue: TASK_QUEUE,
          workflowId: `bench-switchover-${Date.now()}-${i}`,
          args: [{ cluster, to, requestedBy: 'bench' }],
        })) as SwitchoverResult;
        if (r.outcome !== 'completed' || r.writeDowntimeMs === null) throw new Error(`switchover ${i} did not complete: ${r.state}`);
        viaWorkflow.push(r.writeDowntimeMs);
        viaHand.push(await byHand(to, site));
        process.stderr.write(
          `round ${i + 1}/${rounds}: workflow ${site}→${to} ${r.writeDowntimeMs} ms; by hand ${to}→${site} ${viaHand[viaHand.length - 1]} ms\n`,
        );
      }
    });
    process.stdout.write(
      `write downtime of a switchover on the sandbox, ${rounds} rounds, each a workflow switch one way and a hand switch back\n` +
        `  switchover workflow (maintenance, services, hooks, traffic, old primary follows): ${fmt(viaWorkflow)}\n` +
        `  same core steps called directly (stop fast, wait for replay, promote):          ${fmt(viaHand)}\n` +
        `  ratio of medians workflow / by hand: ${(pct(viaWorkflow, 50) / pct(viaHand, 50)).toFixed(2)}\n`,
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/switchover: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
