/**
 * The steps failover and switchover both take on a site's maintenance mode and services: on the
 * old site before promotion (each change recorded as an undo), on the new site after it (forward
 * only: a failure is recorded and the remaining steps still run).
 */
import type { ClusterLayout } from '../../topology/layout';
import { actions, type Undo } from './runbook';
import { messageOf, type StepLog } from './steps';

type Maintenance = ClusterLayout['maintenance'][number];
type Service = ClusterLayout['services'][number];

/**
 * How a step before promotion treats a host it cannot reach and a step that fails. Without these,
 * every host is tried and a failure is thrown (switchover); a failover skips an unreachable host
 * and goes on after a failure, telling what was tried.
 */
export interface BeforePromotionOptions {
  reachable?: (host: string | null) => boolean;
  failed?: (what: string) => void;
}

/** Maintenance on at the site; an undo turns it off again when this step turned it on. */
export async function maintenanceOn(steps: StepLog, cluster: string, m: Maintenance, undo: Undo[], o: BeforePromotionOptions = {}): Promise<void> {
  const site = m.site;
  if (o.reachable && !o.reachable(m.host)) {
    steps.skip(`maintenance-on:${site}`, `${m.host} is unreachable`);
    return;
  }
  try {
    const r = await steps.run(
      `maintenance-on:${site}`,
      () => actions.maintenanceSet({ cluster, site, on: true }),
      (x) => x.detail,
    );
    if (r.changed)
      undo.push({
        what: `maintenance off at ${site}`,
        run: async () => (await actions.maintenanceSet({ cluster, site, on: false })).detail,
      });
  } catch (err) {
    if (!o.failed) throw err;
    o.failed(`maintenance on at ${site} failed: ${messageOf(err as Error)}`);
  }
}

/** The `service-stop` steps: each service stopped in order; an undo starts again each one this run stopped. */
export async function stopServices(steps: StepLog, cluster: string, services: Service[], undo: Undo[], o: BeforePromotionOptions = {}): Promise<void> {
  for (const s of services) {
    if (o.reachable && !o.reachable(s.host)) {
      steps.skip(`service-stop:${s.site}/${s.service}`, `${s.host} is unreachable`);
      continue;
    }
    try {
      const r = await steps.run(
        `service-stop:${s.site}/${s.service}`,
        () => actions.serviceStop({ cluster, site: s.site, service: s.service }),
        (x) => x.detail,
      );
      if (r.changed)
        undo.push({
          what: `start ${s.service} at ${s.site}`,
          run: async () => (await actions.serviceStart({ cluster, site: s.site, service: s.service })).detail,
        });
    } catch (err) {
      if (!o.failed) throw err;
      o.failed(`stopping ${s.service} at ${s.site} failed: ${messageOf(err as Error)}`);
    }
  }
}

/** The `service-start` steps after promotion, in order; a failure is added to `failures` and the next service still started. */
export async function startServices(steps: StepLog, cluster: string, services: Service[], failures: string[]): Promise<void> {
  for (const s of services) {
    await steps
      .run(
        `service-start:${s.site}/${s.service}`,
        () => actions.serviceStart({ cluster, site: s.site, service: s.service }),
        (x) => x.detail,
      )
      .catch((err: unknown) => failures.push(`start ${s.service} at ${s.site}: ${messageOf(err as Error)}`));
  }
}

/** Maintenance off at the site after promotion; a failure is added to `failures`. */
export async function maintenanceOff(steps: StepLog, cluster: string, site: string, failures: string[]): Promise<void> {
  await steps
    .run(
      `maintenance-off:${site}`,
      () => actions.maintenanceSet({ cluster, site, on: false }),
      (x) => x.detail,
    )
    .catch((err: unknown) => failures.push(`maintenance off at ${site}: ${messageOf(err as Error)}`));
}
