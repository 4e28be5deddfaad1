/**
 * One sandbox for one benchmark: brought up in a fresh temp dir on a free net (its topology
 * edited first when asked), a worker on the `switchyard` task queue (not yet running: the
 * benchmark runs it with worker.runUntil), a client and the topology; all stopped and the
 * sandbox removed afterwards, whatever happens.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection, type Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { sandboxDown, sandboxUp, type SandboxOptions } from '../sandbox';
import { pickNet, releaseNet } from '../sandbox/nets';
import { createLogger } from '../src/logging';
import { loadTopology } from '../src/topology/load';
import type { Topology } from '../src/topology/schema';
import { topologyTarget } from '../src/temporal-access';
import { createWorker, installRuntime } from '../src/worker';
import { clientConnectionOptions, targetClient } from '../src/temporal-connection';

export interface BenchStage {
  /** The sandbox's dir and net, for fault injection (stopPart). */
  opts: SandboxOptions;
  status: Awaited<ReturnType<typeof sandboxUp>>;
  worker: Worker;
  client: Client;
  topology: Topology;
}

export interface BenchStageHooks {
  /** Called with the sandbox's options before it is brought up (a signal handler can take it down). */
  onOpts?: (opts: SandboxOptions) => void;
  /** The sandbox's topology text changed before the worker reads it. */
  editTopology?: (text: string) => string;
}

export async function withBenchStage<T>(fromNet: number, fn: (s: BenchStage) => Promise<T>, hooks: BenchStageHooks = {}): Promise<T> {
  const opts = { dir: mkdtempSync(join(tmpdir(), 'switchyard-bench-')), net: await pickNet({ from: fromNet }) };
  hooks.onOpts?.(opts);
  try {
    const status = await sandboxUp(opts);
    if (hooks.editTopology) writeFileSync(status.config, hooks.editTopology(readFileSync(status.config, 'utf8')));
    const target = await topologyTarget(status.config, { address: status.temporal.address, namespace: 'default' });
    const logger = createLogger({ level: 'warn', destination: 2 });
    installRuntime(logger);
    const { worker, close: closeWorker } = await createWorker({ configPath: status.config, target, logger });
    const connection = await Connection.connect(clientConnectionOptions(target));
    try {
      return await fn({ opts, status, worker, client: targetClient(target, connection), topology: loadTopology(status.config) });
    } finally {
      await connection.close();
      await closeWorker();
    }
  } finally {
    await sandboxDown(opts);
    releaseNet(opts.net);
  }
}
