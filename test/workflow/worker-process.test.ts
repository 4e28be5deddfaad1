/**
 * The worker as an operator runs it (`switchyard worker` in its own process) on a real Temporal
 * dev server: JSON log lines carrying the workflow id and step, a clean exit on SIGTERM, and a
 * refusal with the fix when the namespace lacks switchyard's search attributes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadTools } from '../../src/tools';
import { startTestTemporal } from '../support/temporal';
import { startWorkerProcess, stopWorkerProcesses } from '../support/worker';

const example = join(__dirname, '../../examples/switchyard.yaml');

describe('switchyard worker (its own process, real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  let address: string;
  before(async () => {
    env = await startTestTemporal();
    address = env.address;
  });
  after(async () => {
    await stopWorkerProcesses(); // any a failed test left running
    await env?.teardown();
  });

  it('logs JSON with workflow id and step, and exits cleanly on SIGTERM', async () => {
    const w = startWorkerProcess({ configPath: example, address });
    try {
      await w.waitFor((l) => l.msg === 'worker started');
      const handle = await env.client.workflow.start('readiness', {
        taskQueue: 'switchyard',
        workflowId: `worker-test-${Date.now()}`,
        args: [{ cluster: 'no-such-cluster' }],
      });
      await assert.rejects(handle.result(), /Workflow execution failed/);
      const line = await w.waitFor(
        (l) => l.workflowId === handle.workflowId && l.step === 'layout' && /failed: unknown cluster "no-such-cluster"/.test(String(l.msg)),
      );
      assert.equal(line.level, 'info');
      assert.equal(line.cluster, 'no-such-cluster');
      const t0 = Date.now();
      const { code, signal } = await w.stop(); // SIGTERM; SIGKILL only after 20 s
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, `exit after ${Date.now() - t0} ms of SIGTERM:\n${w.raw.join('\n')}`);
      assert.ok(w.lines.some((l) => l.msg === 'worker stopped'));
      assert.deepEqual(
        w.raw.filter((l) => l.startsWith('stdout (not JSON)')),
        [],
        'every stdout line is JSON',
      );
    } finally {
      await w.kill();
    }
  });

  it("refuses to start on a namespace without switchyard's search attributes, saying how to add them", async () => {
    const bare = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: loadTools().temporal }, ip: '127.0.0.1' } });
    try {
      const w = startWorkerProcess({ configPath: example, address: bare.address });
      const { code } = await w.exited();
      const err = w.raw
        .filter((l) => l.startsWith('stderr: '))
        .map((l) => l.slice('stderr: '.length))
        .join('\n');
      assert.equal(code, 1, w.raw.join('\n'));
      assert.match(err, /lacks switchyard's search attributes SwitchyardCluster, SwitchyardOperation, SwitchyardStep, SwitchyardWaitingFor, SwitchyardVerdict/);
      assert.match(err, /temporal operator search-attribute create --address \S+ --namespace default --name SwitchyardCluster --type Keyword/);
    } finally {
      await bare.teardown();
    }
  });
});
