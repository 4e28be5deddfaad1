/**
 * switchyard's side of bench/peers: the sandbox with an in-process worker (bench/stage.ts's
 * withBenchStage), its topology with `failover.automatic: true` before the worker reads it, and
 * the sandbox's options handed out at once so a SIGINT/SIGTERM handler can take it down.
 *
 * The switchover is the real CLI in a subprocess (`node bin/switchyard.js switchover demo --to
 * <site> --wait`), with the sandbox's topology (--config) and Temporal (--address); its step log
 * is read from the run's result afterwards. The failover is the watch in automatic mode.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { parse, stringify } from 'yaml';
import { stopPart, type SandboxOptions } from '../../sandbox';
import { withBenchStage } from '../stage';
import { decide } from '../../src/client/runs';
import type { Progress, StepRecord } from '../../src/contract/messages';
import { watchAckSignal, watchStatusQuery, watchStopSignal, watchWorkflowId } from '../../src/contract/watch';
import type { Topology } from '../../src/topology/schema';
import { TASK_QUEUE } from '../../src/temporal-target';
import type { FailoverResult } from '../../src/workflows/failover';
import type { RejoinResult } from '../../src/workflows/rejoin';
import type { SwitchoverResult } from '../../src/workflows/switchover';
import { sleep, type PeerNode } from './procs';

export const CLUSTER = 'demo';
/** `switchyard watch`'s own defaults (src/client/cli-watch.ts: --every 5s --failures 3). */
export const WATCH = { everySeconds: 5, failures: 3 };

export interface SwitchyardStage {
  opts: SandboxOptions;
  config: string;
  temporalAddress: string;
  worker: Worker;
  client: Client;
  topology: Topology;
  /** The two database nodes as the writer and the checks reach them (as switchyard, over TCP). */
  nodes: (PeerNode & { site: string })[];
  /** The front (HAProxy listen address of the haproxy driver). */
  front: PeerNode;
}

/** The sandbox's topology with the cluster's failover.automatic on (the rest as generated). */
export function withAutomaticFailover(text: string, cluster = CLUSTER): string {
  const doc = parse(text) as { clusters: Record<string, { failover?: Record<string, unknown> }> };
  const c = doc.clusters[cluster];
  if (!c) throw new Error(`the sandbox topology has no cluster ${cluster}`);
  c.failover = { ...(c.failover ?? {}), automatic: true };
  return stringify(doc, { lineWidth: 0 });
}

export async function withSwitchyardStage<T>(onOpts: (o: SandboxOptions) => void, fn: (s: SwitchyardStage) => Promise<T>): Promise<T> {
  return withBenchStage(
    30,
    async ({ opts, status, worker, client, topology }) => {
      const c = topology.clusters[CLUSTER];
      const password = c.postgres.password?.file ? readFileSync(c.postgres.password.file, 'utf8').trim() : undefined;
      const cfg = (host: string, port: number) => ({ host, port, user: c.postgres.user, database: c.postgres.database, password });
      const nodes = Object.entries(c.postgres.nodes).map(([name, n]) => ({
        name,
        site: n.site,
        host: n.host,
        port: n.port,
        conn: cfg(n.host, n.port),
        dataDir: n.dataDir,
      }));
      const fd = c.traffic.find((d) => d.kind === 'haproxy');
      if (!fd || fd.kind !== 'haproxy') throw new Error(`cluster ${CLUSTER} has no haproxy traffic driver (the front)`);
      const front = { name: 'front', host: fd.listen.address, port: fd.listen.port, conn: cfg(fd.listen.address, fd.listen.port), dataDir: '' };
      return fn({ opts, config: status.config, temporalAddress: status.temporal.address, worker, client, topology, nodes, front });
    },
    { onOpts, editTopology: (text) => withAutomaticFailover(text) },
  );
}

export interface CliRun {
  code: number | null;
  output: string;
  /** spawn → the CLI process exited. */
  wallMs: number;
  /** spawn → the run's start in Temporal (the CLI's start-up, config, connect). */
  startMs: number | null;
  result: SwitchoverResult | null;
}

/** `switchyard switchover demo --to <site> --wait` as a subprocess; the run's result read afterwards. */
export async function cliSwitchover(s: SwitchyardStage, to: string, id: string): Promise<CliRun> {
  const t0 = Date.now();
  const bin = resolve(__dirname, '../../bin/switchyard.js');
  const { code, output } = await new Promise<{ code: number | null; output: string }>((res, rej) => {
    const child = spawn(
      process.execPath,
      [bin, '--config', s.config, '--address', s.temporalAddress, 'switchover', CLUSTER, '--to', to, '--wait', '--id', id, '--as', 'bench'],
      {
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', rej);
    child.on('close', (c) => res({ code: c, output: out }));
  });
  const wallMs = Date.now() - t0;
  const h = s.client.workflow.getHandle(id);
  const d = await h.describe().catch(() => null);
  const result = (await h.result().catch(() => null)) as SwitchoverResult | null;
  return { code, output, wallMs, startMs: d ? d.startTime.getTime() - t0 : null, result };
}

/** Each step's duration and its gap to the step before (ms), from a run's step log. */
export function stepTimes(steps: StepRecord[]): { name: string; ms: number; gapMs: number }[] {
  const out: { name: string; ms: number; gapMs: number }[] = [];
  let prevEnd: number | null = null;
  for (const st of steps) {
    const a = Date.parse(st.startedAt);
    const b = st.endedAt ? Date.parse(st.endedAt) : a;
    out.push({ name: st.name, ms: b - a, gapMs: prevEnd === null ? 0 : a - prevEnd });
    prevEnd = Math.max(prevEnd ?? b, b);
  }
  return out;
}

export async function startWatch(s: SwitchyardStage) {
  await s.client.workflow.execute('readiness', { taskQueue: TASK_QUEUE, workflowId: `bench-peers-readiness-${Date.now()}`, args: [{ cluster: CLUSTER }] });
  return s.client.workflow.start('watch', {
    taskQueue: TASK_QUEUE,
    workflowId: watchWorkflowId(CLUSTER),
    args: [{ cluster: CLUSTER, ...WATCH, requestedBy: 'bench' }],
  });
}

export async function stopWatch(s: SwitchyardStage): Promise<void> {
  const h = s.client.workflow.getHandle(watchWorkflowId(CLUSTER));
  await h.signal(watchStopSignal, { by: 'bench' }).catch(() => undefined);
  await h.result().catch(() => undefined);
}

/** Until the watch sees `node` as the primary with no failed probe. */
export async function watchSees(s: SwitchyardStage, node: string, timeoutMs: number): Promise<void> {
  const h = s.client.workflow.getHandle(watchWorkflowId(CLUSTER));
  let last: unknown = null;
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) {
    const st = await h.query(watchStatusQuery).catch(() => null);
    last = st;
    if (st?.primary === node && st.consecutiveFailures === 0) return;
  }
  throw new Error(`the watch never saw ${node} as the primary: ${JSON.stringify(last).slice(0, 400)}`);
}

export interface SwitchyardFailover {
  workflowId: string;
  /** Whether the staged run went on by itself (automatic mode), or waited at a checkpoint the bench approved at once. */
  automatic: boolean;
  approvedByBench: string[];
  result: FailoverResult;
  stagedAt: number;
}

/** Kill `node`'s PostgreSQL (SIGKILL to the part's process group); returns the kill time. */
export async function killNode(s: SwitchyardStage, node: string): Promise<number> {
  const at = Date.now();
  await stopPart(s.opts, `${node}/postgres`, 'kill');
  return at;
}

/** The failover the watch stages after a kill (a different one from `previous`), followed to its end; checkpoints approved at once (and said so). */
export async function followStagedFailover(s: SwitchyardStage, previous: string | null, timeoutMs: number): Promise<SwitchyardFailover> {
  const w = s.client.workflow.getHandle(watchWorkflowId(CLUSTER));
  let id: string | null = null;
  let stagedAt = NaN;
  let automatic = false;
  for (const end = Date.now() + timeoutMs; !id; await sleep(50)) {
    const st = await w.query(watchStatusQuery).catch(() => null);
    if (st?.staged && st.staged.workflowId !== previous)
      [id, stagedAt, automatic] = [st.staged.workflowId, Date.parse(st.staged.at), st.staged.automatic === true];
    else if (Date.now() > end) throw new Error(`the watch staged no failover within ${timeoutMs / 1000} s: ${JSON.stringify(st).slice(0, 400)}`);
  }
  const h = s.client.workflow.getHandle(id);
  const approved: string[] = [];
  for (const end = Date.now() + timeoutMs; (await h.describe()).status.name === 'RUNNING'; await sleep(50)) {
    const p = await h.query<Progress>('progress').catch(() => null);
    if (p?.waitingFor && !approved.includes(p.waitingFor)) {
      const d = await decide(s.client, id, { checkpoint: p.waitingFor, decision: 'approve', by: 'bench', comment: 'bench/peers: approved at once' });
      if (!d.accepted) throw new Error(`approving ${id} at ${p.waitingFor} was refused: ${d.reason}`);
      approved.push(p.waitingFor);
    }
    if (Date.now() > end) throw new Error(`the staged failover ${id} did not finish within ${timeoutMs / 1000} s`);
  }
  const result = (await h.result()) as FailoverResult;
  if (result.outcome !== 'completed') throw new Error(`the staged failover ${id} did not complete: ${result.state}`);
  return { workflowId: id, automatic: automatic && approved.length === 0, approvedByBench: approved, result, stagedAt };
}

/** After a failover: the killed node rejoined (switchyard `rejoin`), the watch's automatic mode acknowledged for the next round. */
export async function rejoinAndAck(s: SwitchyardStage, node: string, round: number): Promise<void> {
  const rj = (await s.client.workflow.execute('rejoin', {
    taskQueue: TASK_QUEUE,
    workflowId: `bench-peers-rejoin-${Date.now()}-${round}`,
    args: [{ cluster: CLUSTER, node, requestedBy: 'bench' }],
  })) as RejoinResult;
  if (rj.outcome !== 'completed') throw new Error(`rejoin of ${node} did not complete: ${JSON.stringify(rj).slice(0, 400)}`);
  await s.client.workflow
    .getHandle(watchWorkflowId(CLUSTER))
    .signal(watchAckSignal, { by: 'bench', comment: 'bench/peers: next round' })
    .catch(() => undefined);
}
