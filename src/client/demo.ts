/**
 * `npm run demo`: the main job end to end on a fresh sandbox of its own. For now: sandbox up, a
 * worker, the readiness report of cluster demo with its step log, sandbox down. Later runbooks
 * (failover, failback) extend it. Whatever happens, the sandbox is torn down before it exits.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { sandboxDown, sandboxUp, type SandboxOptions } from '../../sandbox';
import { pickNet, releaseNet } from '../../sandbox/nets';
import { createLogger } from '../logging';
import { createWorker, installRuntimeLogger, TASK_QUEUE, temporalTarget } from '../worker';
import type { readiness } from '../workflows';
import type { Progress } from '../workflows/messages';
import { formatReadiness } from './readiness';

const say = (s: string) => process.stdout.write(`${s}\n`);

export async function runDemo(): Promise<void> {
  const started = Date.now();
  const secs = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  // 127.0.x.y (Temporal on 127.0.0.1:7233, the UI on :8233) unless something else uses it.
  const net = await pickNet({ prefer: [0], from: 30 });
  const opts: SandboxOptions = { dir: mkdtempSync(join(tmpdir(), 'switchyard-demo-')), net };
  let tornDown = false;
  const teardown = async () => {
    if (tornDown) return;
    tornDown = true;
    say(`\n[${secs()}] sandbox down`);
    await sandboxDown(opts);
    releaseNet(net);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: tearing the demo sandbox down\n`);
    void teardown().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`[${secs()}] 1. sandbox up in ${opts.dir} (two data centres on 127.${opts.net}.x.y)`);
    const status = await sandboxUp(opts, (line) => say(`     ${line}`));
    say(`[${secs()}]    up: ${status.parts.length} parts; Temporal UI ${status.temporal.ui}`);

    say(`[${secs()}] 2. worker on task queue "${TASK_QUEUE}" (logs: warnings only, on stderr)`);
    const target = temporalTarget({ address: status.temporal.address, namespace: 'default' });
    const logger = createLogger({ level: process.env.SWITCHYARD_LOG_LEVEL ?? 'warn', destination: 2, name: 'switchyard-demo' });
    installRuntimeLogger(logger);
    const { worker, close: closeWorker } = await createWorker({ configPath: status.config, target, logger, identity: 'switchyard demo' });
    const connection = await Connection.connect({ address: target.address });
    const client = new Client({ connection, namespace: target.namespace });
    let ready = false;
    try {
      await worker.runUntil(async () => {
        say(`[${secs()}] 3. readiness of cluster "demo" (workflow readiness)`);
        const handle = await client.workflow.start<typeof readiness>('readiness', {
          taskQueue: TASK_QUEUE,
          workflowId: `demo-readiness-${Date.now()}`,
          args: [{ cluster: 'demo' }],
          workflowExecutionTimeout: '5 minutes',
        });
        const report = await handle.result();
        const progress = await handle.query<Progress>('progress');
        say(`     step log of ${handle.workflowId}:`);
        for (const s of progress.steps) say(`       ${s.state.padEnd(7)} ${s.name}${s.detail ? `: ${s.detail}` : ''}`);
        say('');
        say(formatReadiness(report).trimEnd().replace(/^/gm, '     '));
        ready = report.ready;
      });
    } finally {
      await connection.close();
      await closeWorker();
    }
    if (!ready) {
      process.exitCode = 1;
      say(`[${secs()}] the sandbox cluster is NOT ready (see the failed checks above)`);
    } else say(`[${secs()}] 4. the sandbox cluster is ready: dc1 primary, dc2 streaming`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await teardown();
    say(`[${secs()}] done`);
  }
}
