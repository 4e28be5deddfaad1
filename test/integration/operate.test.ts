/**
 * Operating switchyard like production, on one sandbox (encryption on, as the sandbox sets it):
 * the worker's Prometheus endpoint after a backup with a drill and a failover, scraped directly
 * and by a real Prometheus (Debian's) answering PromQL; the history store holding ciphertext only
 * (read raw, without the codec) while `temporal workflow show --codec-endpoint` reads it as before;
 * and key rotation: a run started under the first key finishes on a worker whose newest key is a
 * second one, and a process with the wrong key is told which key id it lacks.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { parseDocument } from 'yaml';
import { ENCRYPTED_ENCODING } from '../../src/codec/aes-gcm';
import { watchStatusQuery, watchStopSignal, watchWorkflowId, type WatchStatus } from '../../src/contract/watch';
import { createLogger } from '../../src/logging';
import { topologyTarget } from '../../src/temporal-access';
import { clientConnectionOptions, targetClient } from '../../src/temporal-connection';
import { TASK_QUEUE } from '../../src/temporal-target';
import { createWorker, installRuntime } from '../../src/worker';
import type { BackupResult } from '../../src/workflows/backup';
import type { FailoverResult } from '../../src/workflows/failover';
import { startStage, type Stage } from '../support/stage';
// (the SDK's exporter cannot report the port it got for :0, hence a free port chosen first)
import { freePort, run as runTo } from './activities-harness';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, parsed enough to read values by name and labels. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const pick = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

/** Every payload in a history as the store holds it, except search attributes (indexed in clear by design), with where it is. */
function payloadsAt(v: unknown, path = '', out: { path: string; p: Payload }[] = []): { path: string; p: Payload }[] {
  if (Array.isArray(v)) v.forEach((x, i) => payloadsAt(x, `${path}[${i}]`, out));
  else if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && 'data' in o) out.push({ path, p: o as Payload });
    else for (const [k, x] of Object.entries(o)) if (k !== 'searchAttributes') payloadsAt(x, `${path}.${k}`, out);
  }
  return out;
}
const payloadsOf = (v: unknown): Payload[] => payloadsAt(v).map((x) => x.p);
const meta = (p: Payload, k: string) => (p.metadata?.[k] ? Buffer.from(p.metadata[k]).toString('utf8') : undefined);

const TEMPORAL = join(__dirname, '..', '..', '.tools', 'venv', 'bin', 'temporal');

describe('operating it: metrics, encrypted payloads, key rotation', () => {
  let st: Stage;
  let metricsUrl = '';
  let backup: BackupResult;
  let failover: FailoverResult;
  let failoverId = '';
  let promDir = '';
  let prom: ChildProcess | null = null;

  before(async () => {
    const port = await freePort('127.0.0.1');
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    installRuntime(createLogger({ level: 'error', destination: 2, name: 'switchyard-test-worker' }), `127.0.0.1:${port}`);
    st = await startStage();
  });
  after(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGKILL');
      await new Promise((r) => prom!.once('close', r));
    }
    if (promDir) rmSync(promDir, { recursive: true, force: true });
    await st?.down();
  });

  it('a backup with a drill, then a failover (dc1 reachable: fenced, no checkpoint)', async () => {
    const b = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], drill: true }, `operate-backup-${Date.now()}`);
    backup = (await b.result()) as BackupResult;
    assert.ok(backup.pg && backup.drill?.ok, `backup and drill: ${JSON.stringify(backup.drill?.failure)}`);
    failoverId = `operate-failover-${Date.now()}`;
    const f = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'metrics test' }, failoverId);
    failover = (await f.result()) as FailoverResult;
    assert.equal(failover.outcome, 'completed');
  });

  it('the worker serves what an operator graphs: RTO, data lost, runs, the last backup and the last proven-restorable backup', async () => {
    const text = await (await fetch(metricsUrl)).text();
    const s = parseMetrics(text);
    assert.match(text, /^temporal_\w+/m, "the SDK's own metrics (temporal_…)");
    const rto = pick(s, 'switchyard_failover_decision_to_traffic_seconds_sum', { cluster: 'demo' });
    assert.equal(rto.length, 1, `one RTO series: ${JSON.stringify(rto)}`);
    assert.ok(
      rto[0].value > 0 && Math.abs(rto[0].value - failover.rto.fromDecisionSeconds!) < 0.01,
      `RTO ${rto[0].value} = the result's ${failover.rto.fromDecisionSeconds}`,
    );
    assert.equal(pick(s, 'switchyard_failover_decision_to_traffic_seconds_count', { cluster: 'demo' })[0]?.value, 1);
    assert.equal(pick(s, 'switchyard_failover_data_lost_bytes_sum', { cluster: 'demo' })[0]?.value, failover.dataLostBytes);
    assert.equal(pick(s, 'switchyard_runs_total', { operation: 'failover', cluster: 'demo', outcome: 'completed' })[0]?.value, 1);
    assert.equal(pick(s, 'switchyard_runs_total', { operation: 'backup', cluster: 'demo', outcome: 'completed' })[0]?.value, 1);
    // The backup's own time, from its manifest on the backup host.
    const manifest = JSON.parse(readFileSync(join(backup.pg!.dir, 'switchyard-manifest.json'), 'utf8')) as { finishedAt: string; totalBytes: number };
    const last = pick(s, 'switchyard_backup_last_success_timestamp_seconds', { cluster: 'demo' });
    assert.ok(last.length >= 1, 'a last-backup series');
    assert.equal(Math.max(...last.map((x) => x.value)), Date.parse(manifest.finishedAt) / 1000, `last backup time = the manifest's ${manifest.finishedAt}`);
    assert.equal(Math.max(...pick(s, 'switchyard_backup_last_size_bytes', { cluster: 'demo' }).map((x) => x.value)), manifest.totalBytes);
    const restorable = pick(s, 'switchyard_backup_last_restorable_timestamp_seconds', { cluster: 'demo' });
    assert.equal(Math.max(...restorable.map((x) => x.value)), Date.parse(manifest.finishedAt) / 1000, 'the drill proved this backup');
    assert.ok((pick(s, 'switchyard_drill_rto_seconds_sum', { cluster: 'demo' })[0]?.value ?? 0) > 0, 'drill RTO');
    assert.equal(
      pick(s, 'switchyard_replication_max_lag_bytes', { cluster: 'demo' })[0]?.value,
      st.cluster.postgres.maxLagBytes,
      'the bound from the topology',
    );
  });

  it('a real Prometheus scrapes the worker and answers PromQL for them', async () => {
    promDir = mkdtempSync(join(tmpdir(), 'switchyard-test-prometheus-'));
    const target = new URL(metricsUrl).host;
    writeFileSync(
      join(promDir, 'prometheus.yml'),
      `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: switchyard-worker\n    static_configs: [{ targets: ['${target}'] }]\n`,
    );
    const port = await freePort('127.0.0.1');
    prom = spawn(
      '/usr/bin/prometheus',
      [
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: 'ignore' },
    );
    const q = async (expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`).catch(() => null);
      if (!r || !r.ok) return [];
      return ((await r.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
    };
    let last: Awaited<ReturnType<typeof q>> = [];
    for (const t0 = Date.now(); last.length === 0; await new Promise((r) => setTimeout(r, 500))) {
      assert.ok(Date.now() - t0 < 60_000, 'Prometheus scraped the worker within 60 s');
      last = await q('max by (cluster) (switchyard_backup_last_success_timestamp_seconds)');
    }
    const manifest = JSON.parse(readFileSync(join(backup.pg!.dir, 'switchyard-manifest.json'), 'utf8')) as { finishedAt: string };
    assert.equal(last[0].metric.cluster, 'demo');
    assert.equal(Number(last[0].value[1]), Date.parse(manifest.finishedAt) / 1000);
    const rto = await q(
      'sum by (cluster) (switchyard_failover_decision_to_traffic_seconds_sum) / sum by (cluster) (switchyard_failover_decision_to_traffic_seconds_count)',
    );
    assert.ok(Number(rto[0]?.value[1]) > 0, `RTO from PromQL: ${JSON.stringify(rto)}`);
    const up = await q('up{job="switchyard-worker"}');
    assert.equal(up[0]?.value[1], '1');
  });

  it("the history store holds ciphertext where switchyard wrote payloads; through the sandbox's codec server it reads as before", async () => {
    // Raw: a connection without the codec reads the events as stored.
    const connection = await Connection.connect(clientConnectionOptions(st.target.address));
    let raw: unknown;
    try {
      raw = (await connection.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId: failoverId } })).history;
    } finally {
      await connection.close();
    }
    const payloads = payloadsOf(raw);
    assert.ok(payloads.length > 20, `payloads in the failover's history: ${payloads.length}`);
    // The SDK's patch markers are the one thing it writes itself, in clear: a patch id, nothing of ours.
    const isPatch = (x: { path: string; p: Payload }) =>
      /markerRecordedEventAttributes\.details\.patch-data/.test(x.path) &&
      Object.keys(JSON.parse(Buffer.from(x.p.data ?? []).toString('utf8')) as object).join() === 'id,deprecated';
    const clearOnes = payloadsAt(raw).filter((x) => meta(x.p, 'encoding') !== ENCRYPTED_ENCODING && !isPatch(x));
    assert.deepEqual(
      clearOnes.map(
        (x) =>
          `${x.path}: ${meta(x.p, 'encoding')} ${Buffer.from(x.p.data ?? [])
            .toString('utf8')
            .slice(0, 80)}`,
      ),
      [],
      'every payload encrypted',
    );
    const clear = [
      JSON.stringify(raw),
      ...payloads.map((p) => Buffer.from(p.data ?? []).toString('utf8')),
      ...payloads.flatMap((p) => Object.values(p.metadata ?? {}).map((m) => Buffer.from(m).toString('utf8'))),
    ].join('\n');
    const node = st.cluster.postgres.nodes['dc2-db'];
    for (const s of ['metrics test', 'dc2-db', node.host, node.dataDir, st.sb.dir, st.cluster.sites.dc2.app!.url])
      assert.ok(!clear.includes(s), `"${s}" is not in the stored history in clear`);

    // The codec server decrypts: `temporal workflow show --codec-endpoint` sees the failover's words.
    const shown = await runTo(
      TEMPORAL,
      [
        'workflow',
        'show',
        '--address',
        st.target.address,
        '--workflow-id',
        failoverId,
        '--output',
        'json',
        '--codec-endpoint',
        st.sb.status.temporal.codecEndpoint,
      ],
      { allowFail: true },
    );
    assert.equal(shown.code, 0, shown.stderr);
    // Its JSON gives payloads as proto JSON (base64): decoded, they are the failover's own words.
    const textOf = (out: string) =>
      payloadsOf(JSON.parse(out)).map((p) => ({
        encoding: Buffer.from(String(p.metadata?.encoding ?? ''), 'base64').toString('utf8'),
        text: Buffer.from(String(p.data ?? ''), 'base64').toString('utf8'),
      }));
    const decoded = textOf(shown.stdout);
    assert.ok(
      decoded.some((p) => p.encoding === 'json/plain' && p.text.includes('"reason":"metrics test"')),
      'the input, decrypted',
    );
    assert.ok(
      decoded.some((p) => p.text.includes('dc2-db')),
      'the promoted node, decrypted',
    );
    assert.ok(!decoded.some((p) => p.encoding === ENCRYPTED_ENCODING), 'nothing left encrypted');
    const without = await runTo(TEMPORAL, ['workflow', 'show', '--address', st.target.address, '--workflow-id', failoverId, '--output', 'json'], {
      allowFail: true,
    });
    assert.equal(without.code, 0, without.stderr);
    assert.ok(
      textOf(without.stdout).every((p) => !p.text.includes('metrics test') && !p.text.includes('dc2-db')),
      'without the codec server: ciphertext only',
    );
  });

  it('key rotation: a watch started under the first key finishes on a worker that encrypts with a second; a wrong key names the key id', async () => {
    const id = watchWorkflowId('demo');
    await st.client.workflow.start('watch', { taskQueue: TASK_QUEUE, workflowId: id, args: [{ cluster: 'demo', everySeconds: 1, requestedBy: 'alice' }] });
    const ticks = async (client = st.client) =>
      (
        await client.workflow
          .getHandle(id)
          .query(watchStatusQuery)
          .catch(() => null as WatchStatus | null)
      )?.ticks ?? 0;
    for (const t0 = Date.now(); (await ticks()) < 1; await new Promise((r) => setTimeout(r, 300))) assert.ok(Date.now() - t0 < 60_000, 'the watch probed');
    await st.stopWorker();

    // Rotate: the sandbox's key stays (it decrypts what was written), a new one encrypts from now on.
    const key2 = join(st.sb.dir, 'secrets', 'codec-2.key');
    writeFileSync(key2, randomBytes(32).toString('hex'), { mode: 0o600 });
    const doc = parseDocument(readFileSync(st.configPath, 'utf8'));
    const top = doc.toJS() as { temporal: { codec: { keys: { id: string; key: { file: string } }[] } } };
    top.temporal.codec.keys.push({ id: 'rotated-2', key: { file: key2 } });
    const rotatedPath = join(st.sb.dir, 'switchyard.rotated.yaml');
    writeFileSync(rotatedPath, JSON.stringify(top, null, 2));
    const target2 = await topologyTarget(rotatedPath, { address: st.target.address, namespace: 'default' });
    const conn2 = await Connection.connect(clientConnectionOptions(target2));
    const w = await createWorker({ configPath: rotatedPath, target: target2, logger: createLogger({ level: 'error', destination: 2 }) });
    try {
      const client2 = targetClient(target2, conn2);
      const result = await w.worker.runUntil(async () => {
        const before = await ticks(client2);
        for (const t0 = Date.now(); (await ticks(client2)) <= before; await new Promise((r) => setTimeout(r, 300)))
          assert.ok(Date.now() - t0 < 60_000, 'the watch probes on under the new key');
        await client2.workflow.getHandle(id).signal(watchStopSignal, { by: 'alice' });
        return client2.workflow.getHandle(id).result();
      });
      assert.deepEqual((result as { stoppedBy: string }).stoppedBy, 'alice');

      // Both keys are in its history: the start under the first, the end under the second.
      const rawConn = await Connection.connect(clientConnectionOptions(st.target.address));
      try {
        const events =
          (await rawConn.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId: id } })).history?.events ?? [];
        const keyOf = (v: unknown) => [...new Set(payloadsOf(v).map((p) => meta(p, 'encryption-key-id')))];
        assert.deepEqual(keyOf(events[0]), ['sandbox-1'], 'the input under the first key');
        assert.deepEqual(keyOf(events.at(-1)), ['rotated-2'], 'the result under the second key');
      } finally {
        await rawConn.close();
      }

      // A process whose "sandbox-1" is another key cannot read the run, and says which key.
      const wrongKey = join(st.sb.dir, 'secrets', 'codec-wrong.key');
      writeFileSync(wrongKey, randomBytes(32).toString('hex'), { mode: 0o600 });
      top.temporal.codec.keys = [{ id: 'sandbox-1', key: { file: wrongKey } }];
      const wrongPath = join(st.sb.dir, 'switchyard.wrong.yaml');
      writeFileSync(wrongPath, JSON.stringify(top, null, 2));
      const wrong = targetClient(await topologyTarget(wrongPath, { address: st.target.address, namespace: 'default' }), conn2);
      await assert.rejects(
        () =>
          wrong.workflow
            .getHandle(id)
            .fetchHistory()
            .then(() => wrong.workflow.getHandle(id).result()),
        (err: Error) => /sandbox-1/.test(`${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`),
      );
      await assert.rejects(
        () => targetClient(st.target, conn2).workflow.getHandle(id).result(),
        (err: Error) => /rotated-2/.test(`${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`),
        'a process with only the first key is told it lacks "rotated-2"',
      );
    } finally {
      await w.close();
      await conn2.close();
    }
  });
});
