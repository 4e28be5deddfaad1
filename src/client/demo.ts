/**
 * `npm run demo`: the main job end to end on a fresh sandbox of its own: sandbox up, a worker, the
 * readiness report of cluster demo, rows written through the front, the cluster's watch, a dc1
 * outage (its database, sshd and app killed) that the watch detects and confirms from dc2, the
 * `failover` it stages waiting at `old-primary-dead`, the demo approving
 * it as a named operator (a person would), the result with RTO and bytes lost, the rows checked on
 * the new primary through the front; then dc1's machines come back and `failback` rejoins dc1 (pg_rewind)
 * and switches over to it, ending ready in the original layout; sandbox down. Whatever happens,
 * the sandbox is torn down.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { sandboxDown, sandboxUp, startPart, stopPart, type SandboxOptions, type SandboxStatus } from '../../sandbox';
import { loadTopology } from '../topology/load';
import { pickNet, releaseNet } from '../../sandbox/nets';
import { createLogger } from '../logging';
import { TASK_QUEUE } from '../temporal-target';
import { createWorker, installRuntime } from '../worker';
import type { failback, failover, readiness, walArchive, watch } from '../workflows';
import { walArchiveStatusQuery, walArchiveStopSignal, walArchiveWorkflowId } from '../contract/wal-archive';
import { watchStatusQuery, watchStopSignal, watchWorkflowId, type WatchStatus } from '../contract/watch';
import type { FailbackResult } from '../workflows/failback';
import type { FailoverResult } from '../workflows/failover';
import type { Progress } from '../contract/messages';
import { formatReadiness } from './readiness-report';
import { formatOutcome, formatStep, runStatus } from './runs';
import { sandboxOperatorKey, sandboxPassword } from '../../sandbox/access';
import { startConsole } from './console/server';
import { ConsoleSession } from './console/api-client';
import { connectClient, targetClient } from '../temporal-connection';
import { topologyTarget } from '../temporal-access';

const say = (s: string) => process.stdout.write(`${s}\n`);

/** The demo's watch: a probe every second, a failover staged after three failed ones. */
const WATCH_EVERY = 1;
const WATCH_FAILURES = 3;

async function untilWatch(h: WorkflowHandle, pred: (s: WatchStatus) => boolean, what: string): Promise<WatchStatus> {
  for (let i = 0; i < 600; i++) {
    const s = await h.query(watchStatusQuery).catch(() => null);
    if (s && pred(s)) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the watch never showed ${what}; see: npx switchyard watch status demo`);
}

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
    const target = await topologyTarget(status.config, { address: status.temporal.address, namespace: 'default' });
    const logger = createLogger({ level: process.env.SWITCHYARD_LOG_LEVEL ?? 'warn', destination: 2, name: 'switchyard-demo' });
    installRuntime(logger);
    const { worker, close: closeWorker } = await createWorker({ configPath: status.config, target, logger, identity: 'switchyard demo' });
    const connection = await connectClient(target);
    const client = targetClient(target, connection);
    const web = await startConsole({ configPath: status.config, target, log: (line) => logger.info(line) });
    say(`[${secs()}]    console at ${web.url} (operators alice, bob, carol; their passwords: ${status.console.operators})`);
    let ok = false;
    try {
      await worker.runUntil(async () => {
        // Continuous WAL archiving (point-in-time recovery): its lag is part of readiness.
        const ah = await client.workflow.start<typeof walArchive>('walArchive', {
          taskQueue: TASK_QUEUE,
          workflowId: walArchiveWorkflowId('demo'),
          args: [{ cluster: 'demo', requestedBy: 'demo' }],
        });
        for (const t0 = Date.now(); (await ah.query(walArchiveStatusQuery)).following === null && Date.now() - t0 < 30_000;)
          await new Promise((r) => setTimeout(r, 250));
        say(`[${secs()}]    WAL archive: ${ah.workflowId} runs pg_receivewal on the backup host, following the primary (also: npx switchyard archive demo)`);
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
        if (!report.ready) {
          say(`[${secs()}] the sandbox cluster is NOT ready (see the failed checks above): stopping here`);
          return;
        }
        say(`[${secs()}] 4. the sandbox cluster is ready: dc1 primary, dc2 streaming`);

        const front = frontConfig(status);
        const before = await frontQuery(front, `INSERT INTO public.sandbox_rows (note) VALUES ('order 1001'), ('order 1002'), ('order 1003') RETURNING id`);
        say(`[${secs()}] 5. wrote ${before.length} rows through the front (${front.host}:${front.port}), ids ${before.map((r) => r.id).join(', ')}`);

        const operator = 'alice';
        const approver = 'bob';
        const watchId = watchWorkflowId('demo');
        const wh = await client.workflow.start<typeof watch>('watch', {
          taskQueue: TASK_QUEUE,
          workflowId: watchId,
          args: [{ cluster: 'demo', everySeconds: WATCH_EVERY, failures: WATCH_FAILURES, requestedBy: operator }],
        });
        const watching = await untilWatch(wh, (w) => w.verdict === 'ok' || w.verdict === 'warning', 'its first verdict');
        say(
          `[${secs()}] 6. the watch of "demo" started by ${operator} (workflow ${watchId}; also: npx switchyard watch demo --every ${WATCH_EVERY}s --failures ${WATCH_FAILURES}): ` +
            `every ${WATCH_EVERY} s it probes the nodes, hosts and traffic from the worker, and dc1 from dc2's vantage host; verdict ${watching.verdict}, primary ${watching.primary}`,
        );

        say(`[${secs()}] 7. dc1 outage: its PostgreSQL, sshd hosts, app and services killed (SIGKILL); nobody starts a failover`);
        const killedAt = Date.now();
        await stopPart(opts, 'dc1', 'kill');
        const seen = await untilWatch(wh, (w) => w.staged !== null, 'a staged failover');
        const id = seen.staged!.workflowId;
        const watchSteps = (await runStatus(client, watchId)).progress?.steps ?? [];
        for (const s of watchSteps.filter((x) => x.name.startsWith('verdict:') || x.name === 'staged')) say(`     watch: ${formatStep(s).trim()}`);
        say(
          `[${secs()}]    the watch staged failover ${id} ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill ` +
            `(${WATCH_FAILURES} probes ${WATCH_EVERY} s apart, confirmed from dc2); requestedBy "watch", the evidence as its reason`,
        );
        const fh = client.workflow.getHandle<typeof failover>(id);
        let printed = 0;
        const printNew = (p: Progress | null) => {
          const steps = p?.steps ?? [];
          for (; printed < steps.length; printed++) if (steps[printed].state !== 'running') say(`     ${formatStep(steps[printed]).trim()}`);
        };
        // What a person weighs at each checkpoint, and what the demo answers as them.
        const asks: Record<string, { why: string; comment: string }> = {
          'old-primary-dead': { why: 'A person would now make sure dc1 is really dead', comment: 'dc1 confirmed powered off' },
          'accept-data-loss': {
            why: 'A person would now weigh what may be lost (writes to dc1 after the last reading)',
            comment: 'no writes after the last check',
          },
        };
        const answered = new Set<string>();
        let bobSession: ConsoleSession | undefined;
        for (;;) {
          const r = await runStatus(client, id);
          if (r.progress) printed = Math.min(printed, r.progress.steps.length);
          const at = r.progress?.waitingFor ?? null;
          if (r.progress && at && asks[at] && !answered.has(at)) {
            const steps = r.progress.steps;
            while (printed < steps.length && steps[printed].state !== 'waiting') say(`     ${formatStep(steps[printed++]).trim()}`);
            say(`[${secs()}] ${answered.size === 0 ? '8' : '8b'}. the run waits at checkpoint "${at}":`);
            say(`     ${steps.find((x) => x.name === `checkpoint:${at}` && x.state === 'waiting')?.detail ?? ''}`);
            say(`     ${asks[at].why}, then approve in the console:`);
            say(`       ${web.url}/runs/${id}/checkpoints/${at}`);
            say(
              `     (or, signed with ${approver}'s own key: npx switchyard approve ${id} ${at} --as ${approver} --key ${sandboxOperatorKey(status.console.operators, approver)})`,
            );
            say(`     The demo signs in to the console as "${approver}" (POST /api/login) and approves through its API:`);
            bobSession ??= await ConsoleSession.signIn(web.url, approver, sandboxPassword(status.console.operators, approver));
            const answer = await bobSession.decide(id, at, 'approve', `demo: ${asks[at].comment}`);
            say(`     ${answer.outcome}${answer.outcome === 'refused' ? `: ${answer.reason}` : ' (the step log says who approved: signed in at the console)'}`);
            answered.add(at);
            printed = steps.length;
            continue;
          }
          if (r.status !== 'RUNNING') break;
          printNew(r.progress);
          await new Promise((res) => setTimeout(res, 500));
        }
        const result: FailoverResult = await fh.result();
        const end = await runStatus(client, id);
        printNew(end.progress);
        say(`[${secs()}] 9. failover result:`);
        say(formatOutcome(end).trimEnd().replace(/^/gm, '     '));
        say(
          `     timeline ${result.timeline.before} → ${result.timeline.after}; ` +
            `traffic: ${result.traffic.map((t) => `${t.driver} → ${t.site}`).join(', ')}; ` +
            `needs rejoin: ${result.topology.needsRejoin.map((n) => n.node).join(', ')}`,
        );

        const after = await frontQuery(front, `SELECT id, note FROM public.sandbox_rows ORDER BY id`);
        const kept = before.filter((b) => after.some((a) => a.id === b.id));
        const added = await frontQuery(
          front,
          `INSERT INTO public.sandbox_rows (note) VALUES ('order 1004, after the failover') RETURNING id, host(inet_server_addr()) AS server`,
        );
        say(
          `[${secs()}] 10. through the front now: ${kept.length} of the ${before.length} rows written before the outage are there; ` +
            `a new write landed on ${added[0].server} (dc2) as id ${added[0].id}`,
        );
        if (!(result.outcome === 'completed' && kept.length === before.length)) return;

        say(`[${secs()}] 11. dc1's machines come back (sshd and app; its PostgreSQL stays down, as an operator keeps a fenced primary down)`);
        for (const part of ['dc1-db/sshd', 'dc1-app/sshd', 'dc1-app/app']) await startPart(opts, part);
        const bid = `demo-failback-${Date.now()}`;
        say(`[${secs()}] 12. failback of "demo" started by ${operator} (workflow ${bid}; also: npx switchyard failback demo --as ${operator} --wait)`);
        const bh = await client.workflow.start<typeof failback>('failback', {
          taskQueue: TASK_QUEUE,
          workflowId: bid,
          args: [{ cluster: 'demo', requestedBy: operator }],
        });
        const back: FailbackResult = await bh.result();
        for (const [label, id] of [
          ['failback', bid],
          ['  rejoin (child)', `${bid}-rejoin`],
          ['  switchover (child)', `${bid}-switchover`],
        ] as const) {
          const r = await runStatus(client, id).catch(() => null);
          if (!r) continue;
          say(`     ${label} ${id}:`);
          for (const s of r.progress?.steps ?? []) say(`       ${formatStep(s).trim()}`);
        }
        say(`[${secs()}] 13. failback result: ${back.outcome}; ${back.state}`);
        if (back.rejoin)
          say(
            `     rejoin: ${back.rejoin.method} in ${back.rejoin.copySeconds} s` +
              `${back.rejoin.divergedBytes !== null ? `; diverged WAL discarded: ${back.rejoin.divergedBytes} bytes` : ''}` +
              `${back.rejoin.movedAside.length ? `; old data directory kept at ${back.rejoin.movedAside.join(', ')}` : ''}`,
          );
        if (back.switchover)
          say(
            `     switchover: write downtime ${back.switchover.writeDowntimeMs ?? '?'} ms (measured by the run's own write probes), ` +
              `timeline ${back.switchover.timeline.before} → ${back.switchover.timeline.after}`,
          );

        const final = await client.workflow.execute<typeof readiness>('readiness', {
          taskQueue: TASK_QUEUE,
          workflowId: `demo-readiness-after-${Date.now()}`,
          args: [{ cluster: 'demo' }],
          workflowExecutionTimeout: '5 minutes',
        });
        const rows = await frontQuery(front, `SELECT count(*)::int AS n, host(inet_server_addr()) AS server FROM public.sandbox_rows`);
        say(
          `[${secs()}] 14. readiness: ${final.ready ? 'READY' : 'NOT READY'}: ${final.primarySite} primary, ` +
            `${final.standbySite ?? 'no'} standby (${final.lagBytes ?? '?'} bytes behind); the front reaches ${rows[0].server} with ${rows[0].n} rows`,
        );
        if (!final.ready) for (const c of final.checks.filter((x) => !x.ok)) say(`       failed ${c.name}: ${c.detail}`);
        const archived = await ah.query(walArchiveStatusQuery);
        say(
          `     WAL archive: ${final.archiveLagBytes ?? '?'} bytes, ${final.archiveLagSeconds ?? '?'} s behind the primary (the RPO of a point-in-time restore now); ` +
            `it followed ${archived.events.map((e) => e.node).join(' → ') || archived.following}`,
        );
        await ah.signal(walArchiveStopSignal, { by: operator });
        await ah.result();
        const watched = await wh.query(watchStatusQuery);
        say(
          `[${secs()}] 15. the watch through it all: ${watched.ticks} probes, verdict ${watched.verdict}, primary ${watched.primary}, ` +
            `${watchSteps.filter((x) => x.name === 'staged').length} failover staged; stopped (also: npx switchyard watch stop demo)`,
        );
        await wh.signal(watchStopSignal, { by: operator });
        await wh.result();
        ok = back.outcome === 'completed' && final.ready && final.primarySite === 'dc1';
      });
    } finally {
      await web.close();
      await connection.close();
      await closeWorker();
    }
    if (!ok) process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await teardown();
    say(`[${secs()}] done`);
  }
}

/** Where clients connect: the traffic front, with the tool's own login (password from its file). */
function frontConfig(status: SandboxStatus): pg.ClientConfig {
  const c = loadTopology(status.config).clusters.demo;
  const front = c.traffic.find((d) => d.kind === 'haproxy');
  if (!front || front.kind !== 'haproxy') throw new Error('the sandbox topology has no haproxy front');
  const file = c.postgres.password?.file;
  return {
    host: front.listen.address,
    port: front.listen.port,
    user: c.postgres.user,
    database: c.postgres.database,
    password: file ? readFileSync(file, 'utf8').trim() : undefined,
    connectionTimeoutMillis: 5000,
  };
}

async function frontQuery(cfg: pg.ClientConfig, sql: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client(cfg);
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}
