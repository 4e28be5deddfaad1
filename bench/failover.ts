/**
 * How fast a failover gives clients their database back, on one sandbox, against issue 14's
 * targets. The `failover` workflow back and forth between dc1 and dc2 with the old site reachable
 * (fenced, no checkpoint); after each round the fenced former primary is rejoined (`rejoin`) so
 * the next round has a standby again. Per round:
 *
 * - decision → first write accepted through the front: a writer inserts every ~20 ms through the
 *   haproxy driver's listen address (connect timeout 250 ms, reconnecting after any error) and
 *   keeps the time of each acknowledged write; the decision is the `promote` step's start in the
 *   run's step log;
 * - decision → front verified: the `traffic:<front>` step's end (step log);
 * - decision → all drivers verified: the result's rto.fromDecisionSeconds.
 *
 * Then once: the watch (every 1 s, 3 failures) with dc1 the primary, dc1 killed, and the time from
 * the kill until the failover the watch staged waits at `old-primary-dead`; approved, it finishes.
 * Prints median, p90 and max with the targets beside them; never asserts a timing.
 *
 *   node --import tsx bench/failover.ts [rounds=6]
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { stopPart } from '../sandbox';
import { decide } from '../src/client/runs';
import type { Progress, StepRecord } from '../src/contract/messages';
import { watchStatusQuery, watchStopSignal, watchWorkflowId } from '../src/contract/watch';
import { TASK_QUEUE } from '../src/temporal-target';
import type { FailoverResult } from '../src/workflows/failover';
import type { RejoinResult } from '../src/workflows/rejoin';
import { withBenchStage } from './stage';

const rounds = Math.max(1, Number(process.argv[2] ?? 6));
const cluster = 'demo';
const WATCH = { everySeconds: 1, failures: 3 };
const TARGET = { firstWriteMs: 1000, allDriversMs: 2000, stagedMs: (WATCH.everySeconds * WATCH.failures + 2) * 1000 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`${line}\n`);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const fmt = (xs: (number | null)[]) => {
  const ok = xs.filter((x): x is number => x !== null);
  const all = `[${xs.map((x) => (x === null ? 'none' : x.toFixed(0))).join(', ')}]`;
  if (!ok.length) return `no value  ${all}`;
  return `median ${pct(ok, 50).toFixed(0)} ms, p90 ${pct(ok, 90).toFixed(0)} ms, max ${Math.max(...ok).toFixed(0)} ms  ${all}`;
};
const met = (xs: (number | null)[], bound: number) =>
  xs.every((x) => x !== null && x <= bound) ? 'met in every round' : `missed in ${xs.filter((x) => x === null || x > bound).length} of ${xs.length}`;

/** A writer through the front: an INSERT every ~20 ms, the time of each acknowledged one and the server that took it. */
function startWriter(cfg: pg.ClientConfig) {
  const acks: { at: number; server: string }[] = [];
  let stopped = false;
  const running = (async () => {
    let c: pg.Client | null = null;
    while (!stopped) {
      const t0 = Date.now();
      try {
        if (!c) {
          c = new pg.Client({ ...cfg, connectionTimeoutMillis: 250, query_timeout: 1000 });
          c.on('error', () => undefined);
          await c.connect();
        }
        const r = await c.query<{ s: string }>(`INSERT INTO public.sandbox_rows (note) VALUES ('bench failover') RETURNING host(inet_server_addr()) AS s`);
        acks.push({ at: Date.now(), server: r.rows[0].s });
      } catch {
        const dead = c;
        c = null;
        void dead?.end().catch(() => undefined);
      }
      await sleep(Math.max(0, 20 - (Date.now() - t0)));
    }
    await c?.end().catch(() => undefined);
  })();
  return {
    acks,
    /** The first write acknowledged by `server` at or after `fromMs`, waiting up to `waitMs` for it. */
    async firstOn(server: string, fromMs: number, waitMs: number): Promise<number | null> {
      for (const end = Date.now() + waitMs; ; await sleep(20)) {
        const a = acks.find((x) => x.at >= fromMs && x.server === server);
        if (a) return a.at;
        if (Date.now() > end) return null;
      }
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

const stepNamed = (steps: StepRecord[], name: string) => steps.find((s) => s.name === name);
const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);

async function main() {
  await withBenchStage(30, async ({ opts, worker, client, topology }) => {
    const c = topology.clusters[cluster];
    const front = c.traffic.find((d) => d.kind === 'haproxy');
    if (!front || front.kind !== 'haproxy') throw new Error(`cluster ${cluster} has no haproxy traffic driver (the front)`);
    const password = c.postgres.password?.file ? readFileSync(c.postgres.password.file, 'utf8').trim() : undefined;
    const viaFront: pg.ClientConfig = { host: front.listen.address, port: front.listen.port, user: c.postgres.user, database: c.postgres.database, password };
    const nodeOf = (site: string) => Object.entries(c.postgres.nodes).find(([, n]) => n.site === site)!;

    const firstWrite: (number | null)[] = [];
    const frontVerified: (number | null)[] = [];
    const allDrivers: (number | null)[] = [];
    let staged: { killToStartedMs: number | null; killToWaitingMs: number } | null = null;
    let primarySite = 'dc1';

    await worker.runUntil(async () => {
      // Failovers back and forth, until `rounds` are done and dc1 is the primary again (the watch part kills dc1).
      for (let i = 0; i < rounds || primarySite !== 'dc1'; i++) {
        const to = primarySite === 'dc1' ? 'dc2' : 'dc1';
        const [, newNodeConf] = nodeOf(to);
        const [oldNode] = nodeOf(primarySite);
        const writer = startWriter(viaFront);
        await sleep(300); // the writer is taking writes on the old primary first
        const r = (await client.workflow.execute('failover', {
          taskQueue: TASK_QUEUE,
          workflowId: `bench-failover-${Date.now()}-${i}`,
          args: [{ cluster, to, requestedBy: 'bench', reason: `bench round ${i + 1}` }],
        })) as FailoverResult;
        if (r.outcome !== 'completed') throw new Error(`failover ${i + 1} did not complete: ${r.state}`);
        const decision = ms(stepNamed(r.steps, 'promote')?.startedAt);
        if (Number.isNaN(decision)) throw new Error(`failover ${i + 1}: no promote step in its step log`);
        const write = await writer.firstOn(newNodeConf.host, decision, 5000);
        await writer.stop();
        const frontStep = stepNamed(r.steps, `traffic:${front.name}`);
        firstWrite.push(write === null ? null : write - decision);
        frontVerified.push(frontStep?.state === 'done' ? ms(frontStep.endedAt) - decision : null);
        allDrivers.push(r.rto.fromDecisionSeconds === null ? null : r.rto.fromDecisionSeconds * 1000);
        log(
          `round ${i + 1}: ${primarySite} → ${to}: first write through the front ${firstWrite.at(-1) ?? 'none'} ms, ` +
            `front verified ${frontVerified.at(-1) ?? 'no'} ms, all drivers ${r.rto.fromDecisionSeconds ?? '?'} s after the decision`,
        );
        primarySite = to;
        // Not measured: the fenced former primary becomes a standby of the new one, for the next round.
        const rj = (await client.workflow.execute('rejoin', {
          taskQueue: TASK_QUEUE,
          workflowId: `bench-rejoin-${Date.now()}-${i}`,
          args: [{ cluster, node: oldNode, requestedBy: 'bench' }],
        })) as RejoinResult;
        if (rj.outcome !== 'completed') throw new Error(`rejoin of ${oldNode} after round ${i + 1} did not complete: ${JSON.stringify(rj)}`);
      }

      // Detection: the watch sees dc1 as the primary, dc1 is killed, the staged failover waits for a person.
      await client.workflow.execute('readiness', { taskQueue: TASK_QUEUE, workflowId: `bench-readiness-${Date.now()}`, args: [{ cluster }] });
      const watch = await client.workflow.start('watch', {
        taskQueue: TASK_QUEUE,
        workflowId: watchWorkflowId(cluster),
        args: [{ cluster, ...WATCH, requestedBy: 'bench' }],
      });
      const [dc1Node] = nodeOf('dc1');
      for (let n = 0; ; n++) {
        const s = await watch.query(watchStatusQuery).catch(() => null);
        if (s?.primary === dc1Node && s.consecutiveFailures === 0) break;
        if (n > 600) throw new Error(`the watch never saw ${dc1Node} as the primary: ${JSON.stringify(s)}`);
        await sleep(50);
      }
      const killedAt = Date.now();
      await stopPart(opts, 'dc1', 'kill');
      let id: string | null = null;
      let startedAt: number | null = null;
      for (const end = Date.now() + 120_000; !id; await sleep(50)) {
        const s = await watch.query(watchStatusQuery).catch(() => null);
        if (s?.staged) [id, startedAt] = [s.staged.workflowId, ms(s.staged.at)];
        else if (Date.now() > end) throw new Error(`the watch staged no failover within 120 s: ${JSON.stringify(s)}`);
      }
      const h = client.workflow.getHandle(id);
      let waitingAt: number | null = null;
      for (const end = Date.now() + 120_000; waitingAt === null; await sleep(50)) {
        const p = await h.query<Progress>('progress').catch(() => null);
        if (p?.waitingFor === 'old-primary-dead') {
          const cp = p.steps.filter((x) => x.name === 'checkpoint:old-primary-dead').at(-1);
          waitingAt = cp ? ms(cp.startedAt) : Date.now();
        } else if (Date.now() > end) throw new Error(`the staged failover ${id} never waited at old-primary-dead: ${JSON.stringify(p?.steps.at(-1))}`);
      }
      staged = { killToStartedMs: startedAt === null || Number.isNaN(startedAt) ? null : startedAt - killedAt, killToWaitingMs: waitingAt - killedAt };
      log(`watch: dc1 killed; failover ${id} staged after ${staged.killToStartedMs ?? '?'} ms, waiting at old-primary-dead after ${staged.killToWaitingMs} ms`);

      const a = await decide(client, id, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob', comment: 'bench: dc1 was killed' });
      if (!a.accepted) throw new Error(`approving ${id} at old-primary-dead was refused: ${a.reason}`);
      for (let n = 0; (await h.describe()).status.name === 'RUNNING'; n++) {
        const p = await h.query<Progress>('progress').catch(() => null);
        if (p?.waitingFor === 'accept-data-loss')
          await decide(client, id, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob', comment: 'bench' });
        if (n > 1200) throw new Error(`the staged failover ${id} did not finish after its approval`);
        await sleep(100);
      }
      const r = (await h.result()) as FailoverResult;
      if (r.outcome !== 'completed') throw new Error(`the staged failover ${id} did not complete: ${r.state}`);
      log(`watch: staged failover completed, all drivers verified ${r.rto.fromDecisionSeconds ?? '?'} s after the decision`);
      await watch.signal(watchStopSignal, { by: 'bench' });
      await watch.result();
    });

    const n = firstWrite.length;
    const s = staged as { killToStartedMs: number | null; killToWaitingMs: number } | null;
    process.stdout.write(
      `failover on the sandbox, ${n} rounds back and forth (old site reachable: fenced, no checkpoint; the former primary rejoined after each)\n` +
        `  decision → first write accepted through the front: ${fmt(firstWrite)}\n` +
        `    target ≤ ${TARGET.firstWriteMs} ms: ${met(firstWrite, TARGET.firstWriteMs)}\n` +
        `  decision → front verified (traffic:${front.name} in the step log): ${fmt(frontVerified)}\n` +
        `  decision → all drivers verified (result rto.fromDecisionSeconds, 0.1 s steps): ${fmt(allDrivers)}\n` +
        `    target ≤ ${TARGET.allDriversMs} ms: ${met(allDrivers, TARGET.allDriversMs)}\n` +
        `detection with the watch every ${WATCH.everySeconds} s, a failover staged after ${WATCH.failures} failed probes; dc1 killed once\n` +
        `  kill → staged failover started: ${s?.killToStartedMs ?? '?'} ms\n` +
        `  kill → staged failover waiting at old-primary-dead: ${s?.killToWaitingMs ?? '?'} ms\n` +
        `    target ≤ interval × failures + 2 s = ${TARGET.stagedMs} ms: ${s && s.killToWaitingMs <= TARGET.stagedMs ? 'met' : 'missed'}\n`,
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/failover: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
