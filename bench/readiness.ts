/**
 * What durability costs a readiness check: the `readiness` workflow on a running worker (every
 * observation an activity recorded in history) against the same activities called directly and
 * judged by the same function, on one sandbox, interleaved in one run. Prints medians and the ratio.
 *
 *   node --import tsx bench/readiness.ts [rounds=7]
 */
import { createActivities } from '../src/activities';
import { assessReadiness, backupObservation, primariesOf } from '../src/workflows/lib/readiness-assess';
import { TASK_QUEUE } from '../src/temporal-target';
import { withBenchStage } from './stage';

const rounds = Number(process.argv[2] ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function direct(acts: ReturnType<typeof createActivities>, cluster: string) {
  const layout = await acts.clusterLayout({ cluster });
  const [nodes, ssh, services, maintenance, traffic, ec2] = await Promise.all([
    Promise.all(layout.nodes.map((n) => acts.pgStatus({ cluster, node: n.name }))),
    Promise.all(layout.hosts.map((h) => acts.sshCheck({ cluster, host: h.name }))),
    Promise.all(layout.services.map((s) => acts.serviceStatus({ cluster, site: s.site, service: s.service }))),
    Promise.all(layout.maintenance.map((m) => acts.maintenanceStatus({ cluster, site: m.site }))),
    Promise.all(layout.traffic.map((d) => acts.trafficRead({ cluster, driver: d.name }))),
    layout.ec2 ? acts.ec2Instances({ cluster }) : Promise.resolve(null),
  ]);
  const [primary] = primariesOf(nodes);
  const probe = await acts.pgWriteProbe({ cluster, node: primary.node });
  const lags = [];
  for (const s of nodes.filter((n) => n !== primary && n.reachable && n.inRecovery))
    lags.push(await acts.pgLag({ cluster, primary: primary.node, standby: s.node }));
  // As the workflow does since 'readiness-backup-age': the newest proven backup, when backups are set up.
  const backups = layout.backup ? backupObservation(await acts.pgBackupList({ cluster })) : null;
  return assessReadiness({ layout, nodes, probe, lags, ssh, services, maintenance, traffic, ec2, backups }, new Date().toISOString());
}

async function main() {
  await withBenchStage(30, async ({ worker, client, topology }) => {
    const acts = createActivities({ topology: () => topology });
    const viaWorkflow: number[] = [];
    const viaDirect: number[] = [];
    await worker.runUntil(async () => {
      for (let i = 0; i < rounds + 1; i++) {
        let t = performance.now();
        const a = await client.workflow.execute('readiness', {
          taskQueue: TASK_QUEUE,
          workflowId: `bench-readiness-${Date.now()}-${i}`,
          args: [{ cluster: 'demo' }],
        });
        const tw = performance.now() - t;
        t = performance.now();
        const b = await direct(acts, 'demo');
        const td = performance.now() - t;
        if (!(a as { ready: boolean }).ready || !b.ready) throw new Error('the sandbox is not ready; the figures would mean nothing');
        if (i > 0) (viaWorkflow.push(tw), viaDirect.push(td)); // round 0 warms connections and caches
      }
    });
    const w = median(viaWorkflow);
    const d = median(viaDirect);
    process.stdout.write(
      `readiness of the sandbox cluster, ${rounds} rounds, interleaved\n` +
        `  workflow (worker running, history recorded): median ${w.toFixed(0)} ms  [${viaWorkflow.map((x) => x.toFixed(0)).join(', ')}]\n` +
        `  same activities called directly:              median ${d.toFixed(0)} ms  [${viaDirect.map((x) => x.toFixed(0)).join(', ')}]\n` +
        `  ratio workflow / direct: ${(w / d).toFixed(2)}\n`,
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/readiness: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
