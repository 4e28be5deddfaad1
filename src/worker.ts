/**
 * The switchyard worker: polls task queue `switchyard`, runs the runbook workflows and their
 * activities against the clusters in the topology. `npx switchyard worker` or `node --import tsx
 * src/worker.ts`. SIGTERM/SIGINT shut it down cleanly (running activities are cancelled and
 * their results are retried by the next worker); SIGHUP re-reads the topology. With a metrics
 * address (--metrics, the topology's metrics.listen, or SWITCHYARD_METRICS) it serves /metrics for
 * Prometheus: the SDK's own (temporal_…) and switchyard's (src/contract/metrics.ts).
 */
import { Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from './activities';
import { PgPool } from './activities/postgres/pool';
import { SshPool } from './activities/ssh/pool';
import { createLogger, TemporalPinoLogger, type AppLogger } from './logging';
import { TASK_QUEUE, type TemporalTarget } from './temporal-target';
import { describeTarget, FAILURE_CONVERTER_PATH, resolveTemporal, type AccessFlags } from './temporal-access';
import { splitListen } from './topology/fields';
import { loadTopology, resolveConfigPath } from './topology/load';
import type { Topology } from './topology/schema';
import { workflowBundle } from './workflow-bundle';
import { SEARCH_ATTRIBUTES } from './workflows/lib/search-attributes';
import { clientConnectionOptions, connectClient, credentials, targetClient } from './temporal-connection';
import { prometheusOptions, topologyGauges } from './worker-metrics';

let runtimeInstalled: { metrics: string | null } | null = null;
/**
 * The Temporal runtime (its logger, and its Prometheus endpoint when `metrics` is host:port) can
 * be set once per process: do it before any connection. A second call asking for an endpoint the
 * first did not set up is refused rather than silently serving nothing.
 */
export function installRuntime(logger: AppLogger, metrics: string | null = null): void {
  if (runtimeInstalled) {
    if (metrics !== null && runtimeInstalled.metrics !== metrics)
      throw new Error(
        `the Temporal runtime of this process already started ${runtimeInstalled.metrics ? `with metrics on ${runtimeInstalled.metrics}` : 'without metrics'}`,
      );
    return;
  }
  Runtime.install({
    logger: new TemporalPinoLogger(logger),
    ...(metrics ? { telemetryOptions: { metrics: { prometheus: prometheusOptions(metrics) } } } : {}),
  });
  runtimeInstalled = { metrics };
}

/** Refuses to start against a namespace without switchyard's search attributes, saying how to add them. */
export async function checkSearchAttributes(target: TemporalTarget): Promise<void> {
  const conn = await connectClient(target, { connectTimeout: '10 seconds' });
  try {
    const res = await conn.operatorService.listSearchAttributes({ namespace: target.namespace });
    const have = new Set(Object.keys(res.customAttributes ?? {}));
    const missing = SEARCH_ATTRIBUTES.map((k) => k.name).filter((n) => !have.has(n));
    if (missing.length > 0) {
      throw new Error(
        `namespace "${target.namespace}" at ${target.address} lacks switchyard's search attributes ${missing.join(', ')}; register them with:\n` +
          missing
            .map((n) => `  temporal operator search-attribute create --address ${target.address} --namespace ${target.namespace} --name ${n} --type Keyword`)
            .join('\n'),
      );
    }
  } finally {
    await conn.close();
  }
}

export interface WorkerOptions {
  configPath: string;
  target: TemporalTarget;
  taskQueue?: string;
  logger: AppLogger;
  /** Identity shown in the Temporal UI. */
  identity?: string;
  /** A prebuilt workflow bundle; default: src/workflows, from the bundle cache (src/workflow-bundle.ts). */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

/**
 * Builds a worker (not yet running) and the topology holder it reads from. `close()` closes both
 * its connections (the worker's, and the client connection its lock activities use): call it
 * after the worker has stopped.
 */
export async function createWorker(
  opts: WorkerOptions,
): Promise<{ worker: Worker; reload: () => void; connection: NativeConnection; close: () => Promise<void> }> {
  let topology: Topology = loadTopology(opts.configPath);
  // switchyard's bounds from the topology (what the alert rules compare against), again on reload.
  const gauges = runtimeInstalled?.metrics ? topologyGauges(Runtime.instance().metricMeter) : null;
  gauges?.publish(topology);
  const reload = () => {
    try {
      topology = loadTopology(opts.configPath);
      gauges?.publish(topology);
      opts.logger.info({ config: opts.configPath, clusters: Object.keys(topology.clusters) }, 'topology reloaded');
    } catch (err) {
      opts.logger.error({ config: opts.configPath, err: (err as Error).message }, 'topology reload refused; keeping the previous one');
    }
  };
  const current = () => topology;
  await checkSearchAttributes(opts.target);
  const connection = await NativeConnection.connect({ address: opts.target.address, ...credentials(opts.target) });
  // Lazy: connects on the first lock activity, so a worker that never takes a lock opens nothing.
  const clientConnection = Connection.lazy(clientConnectionOptions(opts.target));
  const client = targetClient(opts.target, clientConnection);
  // SSH connections shared between activity calls (ssh/pool.ts) and the reads' PostgreSQL
  // connections kept between calls (postgres/pool.ts), closed with the worker.
  const sshPool = new SshPool();
  const pgPool = new PgPool();
  const close = async () => {
    sshPool.close();
    pgPool.close();
    await clientConnection.close();
    await connection.close();
  };
  const worker = await Worker.create({
    connection,
    namespace: opts.target.namespace,
    taskQueue: opts.taskQueue ?? TASK_QUEUE,
    ...(opts.identity ? { identity: opts.identity } : {}),
    dataConverter: opts.target.dataConverter ?? { failureConverterPath: FAILURE_CONVERTER_PATH },
    workflowBundle: opts.workflowBundle ?? (await workflowBundle({ logger: new TemporalPinoLogger(opts.logger) })),
    activities: createActivities({ topology: current, temporal: () => client, sshPool, pgPool }),
  });
  return { worker, reload, connection, close };
}

/**
 * The worker's Temporal target (flags, then the temporal CLI's environment, then the topology's
 * `temporal:`) and metrics address (flag, SWITCHYARD_METRICS, the topology's `metrics.listen`).
 */
export async function workerSettings(
  configPath: string,
  flags: AccessFlags & { metrics?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ target: TemporalTarget; metrics: string | null }> {
  const top = loadTopology(configPath);
  const metrics = flags.metrics || env.SWITCHYARD_METRICS || top.metrics?.listen || null;
  if (metrics !== null && !splitListen(metrics)) throw new Error(`metrics address "${metrics}": expected host:port, e.g. 127.0.0.1:9464`);
  return { target: await resolveTemporal(flags, top.temporal, env), metrics };
}

export async function runWorker(opts: Omit<WorkerOptions, 'logger'> & { logger?: AppLogger; metrics?: string | null }): Promise<void> {
  const logger = opts.logger ?? createLogger({ name: 'switchyard-worker' });
  installRuntime(logger, opts.metrics ?? null);
  const { worker, reload, close } = await createWorker({ ...opts, logger });
  const onHup = () => reload();
  process.on('SIGHUP', onHup);
  logger.info(
    {
      taskQueue: opts.taskQueue ?? TASK_QUEUE,
      temporal: describeTarget(opts.target),
      namespace: opts.target.namespace,
      config: opts.configPath,
      ...(opts.metrics ? { metrics: `http://${opts.metrics}/metrics` } : {}),
    },
    'worker started',
  );
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM/SIGQUIT have drained it
  } finally {
    process.off('SIGHUP', onHup);
    await close();
    logger.info('worker stopped');
  }
}

if (require.main === module) {
  const configPath = resolveConfigPath();
  workerSettings(configPath, {})
    .then(({ target, metrics }) => runWorker({ configPath, target, metrics }))
    .catch((err: unknown) => {
      process.stderr.write(`switchyard worker: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
