/**
 * A stage for runbook tests: a fresh sandbox, a worker on its Temporal (in this process, or none
 * when the test runs its own in a separate process), a client, and readers that check outcomes the
 * way an operator would, independently of the activities under test: a direct PostgreSQL login,
 * the traffic front, the EC2 API, the services' own status commands, the app's HTTP answer.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeAddressesCommand, DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { Connection, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import pg from 'pg';
import { parseDocument } from 'yaml';
import { createLogger } from '../../src/logging';
import { loadTopology } from '../../src/topology/load';
import type { ClusterConfig, Topology } from '../../src/topology/schema';
import { TASK_QUEUE, type TemporalTarget } from '../../src/temporal-target';
import { createWorker, installRuntime } from '../../src/worker';
import type { Progress } from '../../src/contract/messages';
import { startTestSandbox, type TestSandbox } from './sandbox';
import { workflowBundle } from './temporal';
import { clientConnectionOptions, targetClient } from '../../src/temporal-connection';
import { topologyTarget } from '../../src/temporal-access';

const run = promisify(execFile);

export interface StageOptions {
  /** Edit the sandbox's topology before the worker reads it (a copy is written next to it). */
  edit?: (cluster: Record<string, unknown>) => void;
  /** Start a worker in this process (default true). */
  worker?: boolean;
  /**
   * The payload codec's keys instead of the sandbox's own (oldest first; the last encrypts): a
   * known key, so a recorded history can be decrypted by the replay tests later.
   */
  codecKeys?: { id: string; file: string }[];
}

export interface Stage {
  sb: TestSandbox;
  client: Client;
  /** How the worker and the client reach Temporal: the sandbox's address and its topology's codec. */
  target: TemporalTarget;
  /** The topology the worker reads. */
  configPath: string;
  topology: Topology;
  cluster: ClusterConfig;
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  start(type: string, input: object, workflowId?: string): Promise<WorkflowHandle>;
  /** Polls the run's progress until pred holds (or the run closes: then it throws with the step log). */
  waitProgress(id: string, pred: (p: Progress) => boolean, what: string, timeoutMs?: number): Promise<Progress>;
  /** A query on one database node, logged in directly (not through any activity). */
  nodeQuery(node: string, sql: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Can a login to that node be made at all? */
  nodeAnswers(node: string): Promise<boolean>;
  /**
   * Cut a standby off from the primary's WAL (an empty primary_conninfo stops its WAL receiver),
   * then commit `rows` rows through the front: the standby lacks them in what it received.
   */
  standbyFallsBehind(node: string, rows: number): Promise<void>;
  /** A query through the traffic front, as clients connect. */
  frontQuery(sql: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Which database node's instance holds the Elastic IP, read from the EC2 API. */
  eipNode(): Promise<string | null>;
  /** Which database nodes' instances hold the private-ip driver's address, read from the EC2 API. */
  privateIpNodes(): Promise<string[]>;
  /** A service's own status command, run here: true when it exits 0. */
  serviceRunning(site: string, service: string): Promise<boolean>;
  /** The maintenance status command, run here, and the app's HTTP status. */
  maintenance(site: string): Promise<{ on: boolean; http: number | null }>;
  down(): Promise<void>;
}

let loggerInstalled = false;

export async function startStage(opts: StageOptions = {}): Promise<Stage> {
  const sb = await startTestSandbox();
  try {
    let configPath = sb.config;
    if (opts.edit || opts.codecKeys) {
      const doc = parseDocument(readFileSync(sb.config, 'utf8'));
      const js = doc.toJS() as { clusters: Record<string, Record<string, unknown>>; temporal?: { codec?: { keys: unknown[] } } };
      opts.edit?.(js.clusters[sb.cluster]);
      if (opts.codecKeys) js.temporal!.codec!.keys = opts.codecKeys.map((k) => ({ id: k.id, key: { file: k.file } }));
      configPath = join(sb.dir, 'switchyard.test.yaml');
      writeFileSync(configPath, JSON.stringify(js, null, 2));
    }
    const topology = loadTopology(configPath);
    const cluster = topology.clusters[sb.cluster];
    const target = await topologyTarget(configPath, { address: sb.status.temporal.address, namespace: 'default' });
    const connection = await Connection.connect(clientConnectionOptions(target));
    const client = targetClient(target, connection);
    const logger = createLogger({ level: process.env.SWITCHYARD_TEST_VERBOSE ? 'info' : 'error', destination: 2, name: 'switchyard-test-worker' });
    if (!loggerInstalled) {
      installRuntime(logger);
      loggerInstalled = true;
    }
    let current: { worker: Worker; running: Promise<void>; close: () => Promise<void> } | null = null;
    const password = (ref: { file?: string } | undefined) => (ref?.file ? readFileSync(ref.file, 'utf8').trim() : undefined);
    const pgConfig = (host: string, port: number): pg.ClientConfig => ({
      host,
      port,
      user: cluster.postgres.user,
      database: cluster.postgres.database,
      password: password(cluster.postgres.password),
      connectionTimeoutMillis: 3000,
    });
    const query = async (cfg: pg.ClientConfig, sql: string, values?: unknown[]) => {
      const c = new pg.Client(cfg);
      c.on('error', () => undefined);
      await c.connect();
      try {
        return (await c.query(sql, values)).rows as Record<string, unknown>[];
      } finally {
        await c.end().catch(() => undefined);
      }
    };
    const nodeCfg = (node: string) => {
      const n = cluster.postgres.nodes[node];
      if (!n) throw new Error(`no node ${node}`);
      return pgConfig(n.host, n.port);
    };
    const front = cluster.traffic.find((d) => d.kind === 'haproxy');
    const ec2 = new EC2Client({
      region: cluster.ec2!.region,
      endpoint: cluster.ec2!.endpoint,
      credentials: { accessKeyId: password(cluster.ec2!.credentials!.accessKeyId)!, secretAccessKey: password(cluster.ec2!.credentials!.secretAccessKey)! },
    });
    const localExit = async (argv: string[]) => {
      try {
        await run(argv[0], argv.slice(1), { timeout: 20_000 });
        return 0;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        return typeof code === 'number' ? code : -1;
      }
    };

    const stage: Stage = {
      sb,
      client,
      target,
      configPath,
      topology,
      cluster,
      async startWorker() {
        if (current) return;
        const w = await createWorker({
          configPath,
          target,
          logger,
          identity: 'switchyard test worker',
          workflowBundle: await workflowBundle(),
        });
        current = { worker: w.worker, running: w.worker.run(), close: w.close };
      },
      async stopWorker() {
        if (!current) return;
        const c = current;
        current = null;
        c.worker.shutdown();
        await c.running.catch(() => undefined);
        await c.close();
      },
      async start(type, input, workflowId) {
        return client.workflow.start(type, { taskQueue: TASK_QUEUE, workflowId: workflowId ?? `${type}-test-${Date.now()}`, args: [input] });
      },
      async waitProgress(id, pred, what, timeoutMs = 120_000) {
        const h = client.workflow.getHandle(id);
        const deadline = Date.now() + timeoutMs;
        let last: Progress | null = null;
        for (;;) {
          last = await h.query<Progress>('progress').catch(() => last);
          if (last && pred(last)) return last;
          const d = await h.describe();
          const steps = (last?.steps ?? []).map((s) => `${s.state} ${s.name}: ${s.detail}`).join('\n');
          if (d.status.name !== 'RUNNING') {
            const failure = await h.result().then(
              () => '',
              (e: unknown) => String((e as Error).cause ?? e),
            );
            throw new Error(`run ${id} closed (${d.status.name}) before ${what}: ${failure}\n${steps}`);
          }
          if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms\n${steps}`);
          await new Promise((r) => setTimeout(r, 300));
        }
      },
      nodeQuery: (node, sql, values) => query(nodeCfg(node), sql, values),
      async nodeAnswers(node) {
        try {
          await query(nodeCfg(node), 'SELECT 1');
          return true;
        } catch {
          return false;
        }
      },
      async standbyFallsBehind(node, rows) {
        await stage.nodeQuery(node, `ALTER SYSTEM SET primary_conninfo = ''`);
        await stage.nodeQuery(node, 'SELECT pg_reload_conf()');
        for (let i = 0; i < 100; i++) {
          if ((await stage.nodeQuery(node, 'SELECT count(*)::int AS n FROM pg_stat_wal_receiver'))[0].n === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await stage.frontQuery(`INSERT INTO public.sandbox_rows (note) SELECT 'not on the standby ' || g FROM generate_series(1, $1::int) g`, [rows]);
      },
      frontQuery: (sql, values) => {
        if (!front || front.kind !== 'haproxy') throw new Error('no haproxy front');
        return query(pgConfig(front.listen.address, front.listen.port), sql, values);
      },
      async eipNode() {
        const eip = cluster.traffic.find((d) => d.kind === 'elastic-ip');
        if (!eip || eip.kind !== 'elastic-ip') throw new Error('no elastic-ip driver');
        const a = (await ec2.send(new DescribeAddressesCommand({ PublicIps: [eip.publicIp] }))).Addresses?.[0];
        if (!a?.InstanceId) return null;
        const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [a.InstanceId] }));
        const tags = r.Reservations?.[0]?.Instances?.[0]?.Tags ?? [];
        return tags.find((t) => t.Key === 'switchyard:node')?.Value ?? null;
      },
      async privateIpNodes() {
        const vip = cluster.traffic.find((d) => d.kind === 'private-ip');
        if (!vip || vip.kind !== 'private-ip') throw new Error('no private-ip driver');
        const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag-key', Values: ['switchyard:node'] }] }));
        const holders: string[] = [];
        for (const inst of (r.Reservations ?? []).flatMap((x) => x.Instances ?? [])) {
          if (inst.State?.Name === 'terminated') continue;
          const holds = (inst.NetworkInterfaces ?? []).some((ni) => (ni.PrivateIpAddresses ?? []).some((a) => a.PrivateIpAddress === vip.address));
          if (holds) holders.push(inst.Tags?.find((t) => t.Key === 'switchyard:node')?.Value ?? inst.InstanceId ?? '?');
        }
        return holders.sort();
      },
      async serviceRunning(site, service) {
        return (await localExit(cluster.sites[site].services[service].status)) === 0;
      },
      async maintenance(site) {
        const s = cluster.sites[site];
        const on = (await localExit(s.maintenance!.status)) === 0;
        let http: number | null = null;
        try {
          http = (await fetch(s.app!.url, { signal: AbortSignal.timeout(3000) })).status;
        } catch {
          http = null;
        }
        return { on, http };
      },
      async down() {
        await stage.stopWorker().catch(() => undefined);
        await connection.close().catch(() => undefined);
        ec2.destroy();
        await sb.down();
      },
    };
    if (opts.worker !== false) await stage.startWorker();
    return stage;
  } catch (err) {
    await sb.down();
    throw err;
  }
}
