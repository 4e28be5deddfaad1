/**
 * The switchyard worker: polls task queue `switchyard`, runs the runbook workflows and their
 * activities against the clusters in the topology. `npx switchyard worker` or `node --import tsx
 * src/worker.ts`. SIGTERM/SIGINT shut it down cleanly (running activities are cancelled and
 * their results are retried by the next worker); SIGHUP re-reads the topology.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from './activities';
import { createLogger, TemporalPinoLogger, type AppLogger } from './logging';
import { TASK_QUEUE, temporalTarget, type TemporalTarget } from './temporal-target';
import { loadTopology, resolveConfigPath } from './topology/load';
import type { Topology } from './topology/schema';
import { workflowBundle } from './workflow-bundle';
import { SEARCH_ATTRIBUTES } from './workflows/lib/search-attributes';
import { clientConnectionOptions } from './temporal-connection';

let runtimeInstalled = false;
/** The Temporal runtime's logger can be set once per process: do it before any connection. */
export function installRuntimeLogger(logger: AppLogger): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new TemporalPinoLogger(logger) });
  runtimeInstalled = true;
}

/** Refuses to start against a namespace without switchyard's search attributes, saying how to add them. */
export async function checkSearchAttributes(target: TemporalTarget): Promise<void> {
  const conn = await Connection.connect(clientConnectionOptions(target.address, { connectTimeout: '10 seconds' }));
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
  const reload = () => {
    try {
      topology = loadTopology(opts.configPath);
      opts.logger.info({ config: opts.configPath, clusters: Object.keys(topology.clusters) }, 'topology reloaded');
    } catch (err) {
      opts.logger.error({ config: opts.configPath, err: (err as Error).message }, 'topology reload refused; keeping the previous one');
    }
  };
  const current = () => topology;
  await checkSearchAttributes(opts.target);
  const connection = await NativeConnection.connect({ address: opts.target.address });
  // Lazy: connects on the first lock activity, so a worker that never takes a lock opens nothing.
  const clientConnection = Connection.lazy(clientConnectionOptions(opts.target.address));
  const client = new Client({ connection: clientConnection, namespace: opts.target.namespace });
  const close = async () => {
    await clientConnection.close();
    await connection.close();
  };
  const worker = await Worker.create({
    connection,
    namespace: opts.target.namespace,
    taskQueue: opts.taskQueue ?? TASK_QUEUE,
    ...(opts.identity ? { identity: opts.identity } : {}),
    workflowBundle: opts.workflowBundle ?? (await workflowBundle({ logger: new TemporalPinoLogger(opts.logger) })),
    activities: createActivities({ topology: current, temporal: () => client }),
  });
  return { worker, reload, connection, close };
}

export async function runWorker(opts: Omit<WorkerOptions, 'logger'> & { logger?: AppLogger }): Promise<void> {
  const logger = opts.logger ?? createLogger({ name: 'switchyard-worker' });
  installRuntimeLogger(logger);
  const { worker, reload, close } = await createWorker({ ...opts, logger });
  const onHup = () => reload();
  process.on('SIGHUP', onHup);
  logger.info(
    { taskQueue: opts.taskQueue ?? TASK_QUEUE, address: opts.target.address, namespace: opts.target.namespace, config: opts.configPath },
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
  runWorker({ configPath: resolveConfigPath(), target: temporalTarget() }).catch((err: unknown) => {
    process.stderr.write(`switchyard worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
