/**
 * The worker as an operator runs it (`switchyard worker` in its own process) on a real Temporal
 * dev server: JSON log lines carrying the workflow id and step, a clean exit on SIGTERM, and a
 * refusal with the fix when the namespace lacks switchyard's search attributes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadTools } from '../../src/tools';
import { startTestTemporal } from '../support/temporal';

const bin = join(__dirname, '../../bin/switchyard.js');
const example = join(__dirname, '../../examples/switchyard.yaml');

function startWorker(address: string): { proc: ChildProcessWithoutNullStreams; lines: Record<string, unknown>[]; raw: string[]; waitFor: (pred: (l: Record<string, unknown>) => boolean, ms?: number) => Promise<Record<string, unknown>> } {
  const proc = spawn(process.execPath, [bin, 'worker', '--config', example, '--address', address], { env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'info' } });
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  let buf = '';
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      raw.push(line);
      const parsed = JSON.parse(line) as Record<string, unknown>; // every stdout line is JSON
      lines.push(parsed);
      for (const w of [...waiters]) if (w.pred(parsed)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(parsed));
    }
  });
  proc.stderr.on('data', (d: Buffer) => raw.push(`stderr: ${d.toString()}`));
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, ms = 60_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const hit = lines.find(pred);
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`log line not seen in ${ms} ms; output:\n${raw.join('\n')}`)), ms);
      waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  return { proc, lines, raw, waitFor };
}

describe('switchyard worker (its own process, real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  let address: string;
  before(async () => {
    env = await startTestTemporal();
    address = env.address;
  });
  after(async () => {
    await env?.teardown();
  });

  it('logs JSON with workflow id and step, and exits cleanly on SIGTERM', async () => {
    const w = startWorker(address);
    try {
      await w.waitFor((l) => l.msg === 'worker started');
      const handle = await env.client.workflow.start('readiness', { taskQueue: 'switchyard', workflowId: `worker-test-${Date.now()}`, args: [{ cluster: 'no-such-cluster' }] });
      await assert.rejects(handle.result(), /Workflow execution failed/);
      const line = await w.waitFor((l) => l.workflowId === handle.workflowId && l.step === 'layout' && /failed: unknown cluster "no-such-cluster"/.test(String(l.msg)));
      assert.equal(line.level, 'info');
      assert.equal(line.cluster, 'no-such-cluster');
      const exited = once(w.proc, 'exit');
      w.proc.kill('SIGTERM');
      const [code] = (await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error('worker did not stop within 20 s of SIGTERM')), 20_000))])) as [number | null];
      assert.equal(code, 0, w.raw.join('\n'));
      assert.ok(w.lines.some((l) => l.msg === 'worker stopped'));
    } finally {
      if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    }
  });

  it('refuses to start on a namespace without switchyard\'s search attributes, saying how to add them', async () => {
    const bare = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: loadTools().temporal }, ip: '127.0.0.1' } });
    try {
      const p = spawn(process.execPath, [bin, 'worker', '--config', example, '--address', bare.address]);
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(p, 'exit')) as [number | null];
      assert.equal(code, 1);
      assert.match(err, /lacks switchyard's search attributes SwitchyardCluster, SwitchyardOperation, SwitchyardStep, SwitchyardWaitingFor/);
      assert.match(err, /temporal operator search-attribute create --address \S+ --namespace default --name SwitchyardCluster --type Keyword/);
    } finally {
      await bare.teardown();
    }
  });
});
