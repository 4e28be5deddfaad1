/**
 * 200 clusters on one worker (issue 17, bench/scale). A generated topology of N clusters that all
 * use the sandbox's PostgreSQL pair, hosts and traffic front as their nodes (a real pair each
 * would not fit on this machine; the output says so), one worker process (`switchyard worker`),
 * the sandbox's Temporal dev server:
 *
 *   1. N dry-run backups at once, then N dry-run failovers at once: the time until all complete;
 *   2. from a sample of their histories, a step's orchestration overhead on the local server:
 *      activity scheduled → started, and completed → the next command (the workflow task that
 *      reads the result), p50 and p99;
 *   3. N watches probing every 10 s for `watchSeconds`, one status query each at the end; from
 *      their histories, the gaps between consecutive probes (a watch that falls behind its
 *      interval shows as a gap > 1.5 intervals), a probe's run time and the time from its timer
 *      to the next probe;
 *   4. the worker's and the Temporal server's peak RSS and CPU seconds over the run.
 *
 *   node --import tsx bench/scale.ts [clusters=200] [watchSeconds=60]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Connection, type WorkflowHandle } from '@temporalio/client';
import { sandboxDown, sandboxUp } from '../sandbox';
import { pickNet, releaseNet } from '../sandbox/nets';
import { topologyTarget } from '../src/temporal-access';
import { clientConnectionOptions, targetClient } from '../src/temporal-connection';
import { TASK_QUEUE } from '../src/temporal-target';
import { watchStatusQuery, watchStopSignal, watchWorkflowId } from '../src/contract/watch';
import { ms, pct, probeCadence, procSample, scaledTopology, type ProcSample } from './scale-lib';

const clusters = Number(process.argv[2] ?? 200);
const watchSeconds = Number(process.argv[3] ?? 60);
const WATCH_EVERY = 10;
const say = (s: string) => process.stdout.write(`${s}\n`);

async function main() {
  const opts = { dir: mkdtempSync(join(tmpdir(), 'switchyard-bench-scale-')), net: await pickNet({ from: 60 }) };
  let worker: ReturnType<typeof spawn> | null = null;
  // Interrupted (Ctrl-C, a timeout's TERM): the worker and the sandbox go too, as when it finishes.
  const interrupted = (sig: NodeJS.Signals) => {
    worker?.kill('SIGKILL');
    void sandboxDown(opts).finally(() => {
      releaseNet(opts.net);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const status = await sandboxUp(opts);
    const scaled = join(opts.dir, 'scale.yaml');
    writeFileSync(scaled, scaledTopology(readFileSync(status.config, 'utf8'), clusters));
    const names = Array.from({ length: clusters }, (_, i) => `c${String(i).padStart(3, '0')}`);
    say(`${clusters} clusters in ${scaled}: all share the sandbox's PostgreSQL pair (dc1-db, dc2-db), hosts and front as their nodes`);

    const target = await topologyTarget(scaled, { address: status.temporal.address, namespace: 'default' });
    const connection = await Connection.connect(clientConnectionOptions(target));
    const client = targetClient(target, connection);

    worker = spawn(process.execPath, [resolve(__dirname, '../bin/switchyard.js'), 'worker', '--config', scaled, '--address', status.temporal.address], {
      env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const temporalPid = status.parts.find((p) => p.name === 'temporal')?.pid ?? null;
    const peaks = { worker: procSample(worker.pid!), temporal: temporalPid ? procSample(temporalPid) : null };
    const sampler = setInterval(() => {
      peaks.worker = procSample(worker!.pid!, peaks.worker);
      if (temporalPid) peaks.temporal = procSample(temporalPid, peaks.temporal);
    }, 250);
    // The worker is up once a trivial run completes.
    await client.workflow.execute('backup', {
      taskQueue: TASK_QUEUE,
      workflowId: `scale-warmup-${Date.now()}`,
      args: [{ cluster: names[0], dryRun: true, requestedBy: 'bench', retention: false }],
    });
    const cpu0 = { worker: procSample(worker.pid!), temporal: temporalPid ? procSample(temporalPid) : null };

    const allAtOnce = async (
      type: 'backup' | 'failover',
      input: (c: string) => object,
    ): Promise<{ seconds: number; handles: WorkflowHandle[]; failed: number }> => {
      const t0 = Date.now();
      const handles = await Promise.all(
        names.map((c) => client.workflow.start(type, { taskQueue: TASK_QUEUE, workflowId: `scale-${type}-${c}-${t0}`, args: [input(c)] })),
      );
      const results = await Promise.allSettled(handles.map((h) => h.result()));
      return { seconds: (Date.now() - t0) / 1000, handles, failed: results.filter((r) => r.status === 'rejected').length };
    };
    const backups = await allAtOnce('backup', (c) => ({ cluster: c, dryRun: true, requestedBy: 'bench' }));
    say(`${clusters} dry-run backups at once: all complete in ${backups.seconds.toFixed(1)} s (${backups.failed} failed)`);
    const failovers = await allAtOnce('failover', (c) => ({ cluster: c, dryRun: true, requestedBy: 'bench', reason: 'scale bench' }));
    say(`${clusters} dry-run failovers at once: all complete in ${failovers.seconds.toFixed(1)} s (${failovers.failed} failed)`);

    // Orchestration overhead from the histories (a sample of each kind).
    const queued: number[] = [];
    const turnaround: number[] = [];
    for (const h of [...backups.handles.slice(0, 25), ...failovers.handles.slice(0, 25)]) {
      const events = (await h.fetchHistory()).events ?? [];
      const at = (e: (typeof events)[number]) => ms(e.eventTime);
      const scheduled = new Map<string, number>();
      let lastCompleted: number | null = null;
      for (const e of events) {
        const id = String(e.eventId);
        if (e.activityTaskScheduledEventAttributes) {
          scheduled.set(id, at(e));
          if (lastCompleted !== null) turnaround.push(at(e) - lastCompleted);
          lastCompleted = null;
        } else if (e.activityTaskStartedEventAttributes) {
          const s = scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId));
          if (s !== undefined) queued.push(at(e) - s);
        } else if (e.activityTaskCompletedEventAttributes) lastCompleted = at(e);
      }
    }
    say(
      `orchestration overhead per step (${queued.length} activities of 50 runs): scheduled → started p50 ${pct(queued, 0.5)} ms, p99 ${pct(queued, 0.99)} ms; ` +
        `completed → next step scheduled p50 ${pct(turnaround, 0.5)} ms, p99 ${pct(turnaround, 0.99)} ms`,
    );

    // Watches every 10 s.
    const watches = await Promise.all(
      names.map((c) =>
        client.workflow.start('watch', {
          taskQueue: TASK_QUEUE,
          workflowId: watchWorkflowId(c),
          args: [{ cluster: c, everySeconds: WATCH_EVERY, failures: 3, requestedBy: 'bench' }],
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, watchSeconds * 1000));
    // What an operator asks (`switchyard watch status`), once per watch while they all run.
    const queryMs: number[] = [];
    let queryFailures = 0;
    let firstQueryError: string | null = null;
    await Promise.all(
      watches.map(async (w) => {
        const q0 = Date.now();
        try {
          await w.query(watchStatusQuery);
          queryMs.push(Date.now() - q0);
        } catch (err) {
          queryFailures += 1;
          const e = err as Error;
          firstQueryError ??= `${w.workflowId}: ${e.message}${e.cause ? ` (${(e.cause as Error).message})` : ''}`;
        }
      }),
    );
    await Promise.all(watches.map((w) => w.signal(watchStopSignal, { by: 'bench' }).catch(() => undefined)));
    await Promise.allSettled(watches.map((w) => w.result()));
    // Whether they kept their interval, from their histories (no sampling load during the run).
    const gaps: number[] = [];
    const runs: number[] = [];
    const timerToProbe: number[] = [];
    const probes: number[] = [];
    for (const w of watches) {
      const c = probeCadence((await w.fetchHistory()).events ?? [], 'watchObserve');
      gaps.push(...c.gapsMs);
      runs.push(...c.runMs);
      timerToProbe.push(...c.timerToProbeMs);
      probes.push(c.probes);
    }
    const late = gaps.filter((g) => g > WATCH_EVERY * 1000 * 1.5).length;
    const expected = Math.floor(watchSeconds / WATCH_EVERY);
    say(
      `${clusters} watches every ${WATCH_EVERY} s for ${watchSeconds} s (each spreads itself once by up to one interval after its first probe): ` +
        `${pct(probes, 0.5)} probes per watch (min ${Math.min(...probes)}; ${expected - 1}–${expected + 1} due, the spread taking up to one interval); ` +
        `between probe starts p50 ${pct(gaps, 0.5) / 1000} s, p99 ${pct(gaps, 0.99) / 1000} s, max ${Math.max(...gaps) / 1000} s; ` +
        `${late} of ${gaps.length} gaps over ${WATCH_EVERY * 1.5} s`,
    );
    say(
      `  a probe (watchObserve) runs p50 ${pct(runs, 0.5)} ms, p99 ${pct(runs, 0.99)} ms; its timer → the next probe scheduled p50 ${pct(timerToProbe, 0.5)} ms, p99 ${pct(timerToProbe, 0.99)} ms; ` +
        `one status query per watch: p50 ${pct(queryMs, 0.5)} ms, p99 ${pct(queryMs, 0.99)} ms${queryFailures ? `, ${queryFailures} failed (the first: ${firstQueryError})` : ''}`,
    );

    clearInterval(sampler);
    const report = (what: string, peak: ProcSample | null, start: ProcSample | null) =>
      peak && start
        ? `${what}: peak RSS ${(peak.peakRssKiB / 1024).toFixed(0)} MiB, CPU ${(peak.cpuSeconds - start.cpuSeconds).toFixed(1)} s over the run`
        : `${what}: not measured`;
    say(report('worker', peaks.worker, cpu0.worker));
    say(report('Temporal dev server', peaks.temporal, cpu0.temporal));
    await connection.close();
  } finally {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 3000));
      if (worker.exitCode === null) worker.kill('SIGKILL');
    }
    await sandboxDown(opts);
    releaseNet(opts.net);
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  process.exitCode = 1;
});
