/**
 * switchyard against its peers on one machine, in one run: beside the sandbox, a repmgr pair
 * (repmgrd on both, a real sshd per node), a pg_auto_failover formation (monitor + two nodes)
 * and a Patroni pair on a one-member etcd, all on loopback, all PostgreSQL 15 with the sandbox's
 * settings and the same table with the same three seeded rows.
 *
 * One client for all: a writer inserting a sequenced row every 20 ms on whichever node accepts
 * writes (bench/peers/writer.ts); for switchyard also a second one through the front (HAProxy).
 * Write downtime of a run = the longest gap between consecutive acknowledged writes; lost writes
 * = acknowledged ids missing afterwards on the new primary.
 *
 *   1. planned switchover, `rounds` rounds interleaved (switchyard, repmgr, pg_auto_failover,
 *      Patroni, then the next round), each tool back and forth: write downtime, lost writes,
 *      and the command's wall time (until it returns, and until the old primary streams from
 *      the new one);
 *   2. unplanned failover, `failoverRounds` rounds interleaved: the primary's postmaster killed
 *      (SIGKILL), time from the kill to the first write acknowledged by a PostgreSQL other than
 *      the killed one (a tool may restart it in place: the output says where writes came back);
 *      switchyard's watch in automatic mode; each pair restored afterwards (not measured).
 *
 * Prints the tables, the targets beside the figures, where switchyard's time goes (its step
 * log), and ends with the three ratio lines. Never asserts a timing; exits non-zero when a round
 * is broken (a command failed, no writes came back, the pair could not be restored).
 *
 *   node --import tsx bench/peers.ts [rounds=6] [failoverRounds=3]
 */
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { sandboxDown, type SandboxOptions } from '../sandbox';
import { releaseNet } from '../sandbox/nets';
import { postgresqlConf } from '../sandbox/postgres';
import type { DbLayout } from '../sandbox/layout';
import { autoFailoverFormation } from './peers/autofailover';
import type { Peer } from './peers/peer';
import { patroniPair } from './peers/patroni';
import { PeerHost, killPostmaster, primaryOf, sleep, tuningFrom, waitHealthy, type PeerNode } from './peers/procs';
import { repmgrPair } from './peers/repmgr';
import { against, formatTable, lostWrites, ms, pct, ratioLines, summarize, writeDowntimeMs } from './peers/report';
import {
  WATCH,
  cliSwitchover,
  followStagedFailover,
  killNode,
  rejoinAndAck,
  startWatch,
  stepTimes,
  stopWatch,
  watchSees,
  withSwitchyardStage,
  type SwitchyardStage,
} from './peers/switchyard';
import { presentIds, startWriter, type Ack, type Writer } from './peers/writer';

const rounds = Math.max(1, Number(process.argv[2] ?? 6));
const failoverRounds = Math.max(1, Number(process.argv[3] ?? 3));
const TOOLS = ['switchyard', 'repmgr', 'pg_auto_failover', 'patroni'] as const;
type Tool = (typeof TOOLS)[number];
const TARGET = { downtimeMedianMs: 250, peerFactor: 0.5 };

const out = (s = '') => process.stdout.write(`${s}\n`);
const log = (s: string) => process.stderr.write(`${s}\n`);

class BrokenRound extends Error {}

interface SwitchoverRow {
  tool: Tool;
  round: number;
  from: string;
  to: string;
  downtimeMs: number | null;
  lost: number;
  commandMs: number;
  streamingMs: number;
  front?: { downtimeMs: number | null; lost: number };
  cli?: { startMs: number | null; workflowMs: number | null; steps: { name: string; ms: number; gapMs: number }[] };
}
interface FailoverRow {
  tool: Tool;
  round: number;
  from: string;
  killToWriteMs: number;
  cameBackOn: string;
  inPlace: boolean;
  lost: number;
  front?: { killToWriteMs: number | null };
  note: string;
}

const switchovers: SwitchoverRow[] = [];
const failovers: FailoverRow[] = [];
const versions: string[] = [];

/** A fake layout for sandbox/postgres.ts's postgresqlConf: only the tuning is kept (tuningFrom drops what names a node). */
const SANDBOX_TUNING = tuningFrom(
  postgresqlConf({ node: 'x', site: 'dc1', address: '127.0.0.1', slot: 'x', dataDir: '/x', configDir: '/x', socketDir: '/x', log: '/x' } as DbLayout),
);

const writerFor = (nodes: PeerNode[], note: string): Writer =>
  startWriter(
    nodes.map((n) => ({ name: n.name, cfg: n.conn })),
    note,
  );

/** Acked ids (of every writer given) the new primary does not have. */
async function countLost(primary: PeerNode, ...acks: Ack[][]): Promise<number> {
  const ids = acks.flat().map((a) => a.id);
  const present = await presentIds(primary.conn, ids);
  if (!present) throw new BrokenRound(`cannot read the rows on ${primary.name} to count lost writes`);
  return lostWrites(ids, present).length;
}

/** One switchover of any tool, measured the same way. `run` is the command; it throws when the command failed. */
async function measureSwitchover(
  tool: Tool,
  round: number,
  nodes: PeerNode[],
  run: (from: PeerNode, to: PeerNode) => Promise<Partial<SwitchoverRow> | void>,
  front?: PeerNode,
): Promise<void> {
  const from = await primaryOf(nodes);
  if (!from) throw new BrokenRound(`${tool} switchover round ${round}: no single primary before the round`);
  const to = nodes.find((n) => n !== from)!;
  const w = writerFor(nodes, `peers ${tool} switchover ${round}`);
  const wf = front ? startWriter([{ name: 'front', cfg: front.conn }], `peers ${tool} switchover ${round} front`) : null;
  try {
    const t = Date.now();
    if (!(await w.firstAfter(t, 10_000)) || (wf && !(await wf.firstAfter(t, 10_000))))
      throw new BrokenRound(`${tool} switchover round ${round}: the writer got no write in before the command`);
    await sleep(500);
    const t0 = Date.now();
    let extra: Partial<SwitchoverRow> | void;
    try {
      extra = await run(from, to);
    } catch (err) {
      throw new BrokenRound(`${tool} switchover round ${round} (${from.name} → ${to.name}): ${(err as Error).message}`);
    }
    const tCmd = Date.now();
    const healthy = await waitHealthy(nodes, 120_000);
    const tStream = Date.now();
    if (!healthy || healthy.primary !== to)
      throw new BrokenRound(`${tool} switchover round ${round}: ${from.name} did not stream from ${to.name} within 120 s of the command's end`);
    const back = await w.firstAfter(t0, 30_000, (a) => a.node === to.name);
    const backFront = wf ? await wf.firstAfter(t0, 30_000) : null;
    if (!back || (wf && !backFront)) throw new BrokenRound(`${tool} switchover round ${round}: no write acknowledged by ${to.name} within 30 s`);
    // A little past the last event, so the gap that ends the window is a real one.
    await sleep(Math.max(0, Math.max(back.at, tStream) + 500 - Date.now()));
    await w.stop();
    await wf?.stop();
    const lost = await countLost(to, w.acks);
    const row: SwitchoverRow = {
      tool,
      round,
      from: from.name,
      to: to.name,
      downtimeMs: writeDowntimeMs(w.acks.map((a) => a.at)),
      lost,
      commandMs: tCmd - t0,
      streamingMs: tStream - t0,
      ...(wf ? { front: { downtimeMs: writeDowntimeMs(wf.acks.map((a) => a.at)), lost: await countLost(to, wf.acks) } } : {}),
      ...(extra ?? {}),
    };
    switchovers.push(row);
    log(
      `switchover round ${round} ${tool} ${from.name} → ${to.name}: write downtime ${ms(row.downtimeMs)}${row.front ? ` (front ${ms(row.front.downtimeMs)})` : ''}, ` +
        `lost ${lost}${row.front ? ` (front ${row.front.lost})` : ''}, command ${ms(row.commandMs)}, until streaming ${ms(row.streamingMs)}`,
    );
  } finally {
    await w.stop();
    await wf?.stop();
  }
}

/** One failover: kill the primary's postmaster, time until a write is acknowledged by any other PostgreSQL; then restore. */
async function measureFailover(
  tool: Tool,
  round: number,
  nodes: PeerNode[],
  kill: (primary: PeerNode) => Promise<number>,
  /** Started right after the kill, beside the wait for the first write (switchyard's: follow the staged failover, approving at once what it asks). */
  react: () => Promise<string>,
  /** After the first write: the pair made healthy again (not measured). */
  finish: (old: PeerNode, primary: PeerNode) => Promise<void>,
  front?: PeerNode,
): Promise<void> {
  const from = await primaryOf(nodes);
  if (!from) throw new BrokenRound(`${tool} failover round ${round}: no single primary before the round`);
  const w = writerFor(nodes, `peers ${tool} failover ${round}`);
  const wf = front ? startWriter([{ name: 'front', cfg: front.conn }], `peers ${tool} failover ${round} front`) : null;
  try {
    const before = await w.firstAfter(Date.now(), 10_000);
    if (!before) throw new BrokenRound(`${tool} failover round ${round}: the writer got no write in before the kill`);
    await sleep(1000);
    const killed = w.acks.at(-1)!.server;
    const tKill = await kill(from);
    const reacting = react().then(
      (note) => ({ note, err: null as Error | null }),
      (err: Error) => ({ note: '', err }),
    );
    // Orphaned backends of the killed postmaster may still acknowledge a write or two: only another server counts.
    const first = await w.firstAfter(tKill, 300_000, (a) => a.server !== killed);
    if (!first) throw new BrokenRound(`${tool} failover round ${round}: no write acknowledged within 300 s of killing ${from.name}`);
    const frontFirst = wf ? await wf.firstAfter(tKill, 120_000, (a) => a.server !== `front@${killed.split('@')[1]}`) : null;
    const { note, err: reactErr } = await reacting;
    if (reactErr) throw new BrokenRound(`${tool} failover round ${round}: ${reactErr.message}`);
    try {
      await finish(
        from,
        nodes.find((n) => n.name === first.node)!,
      );
    } catch (err) {
      throw new BrokenRound(`${tool} failover round ${round}: ${(err as Error).message}`);
    }
    await sleep(500);
    await w.stop();
    await wf?.stop();
    const primary = (await primaryOf(nodes)) ?? nodes.find((n) => n.name === first.node)!;
    const lost = await countLost(primary, w.acks, wf?.acks ?? []);
    const row: FailoverRow = {
      tool,
      round,
      from: from.name,
      killToWriteMs: first.at - tKill,
      cameBackOn: first.node,
      inPlace: first.node === from.name,
      lost,
      ...(wf ? { front: { killToWriteMs: frontFirst ? frontFirst.at - tKill : null } } : {}),
      note,
    };
    failovers.push(row);
    log(
      `failover round ${round} ${tool}: ${from.name} killed; first write ${ms(row.killToWriteMs)} later on ${first.node}${row.inPlace ? ' (restarted in place)' : ''}` +
        `${row.front ? `, through the front ${ms(row.front.killToWriteMs)}` : ''}; lost ${lost}${note ? `; ${note}` : ''}`,
    );
  } finally {
    await w.stop();
    await wf?.stop();
  }
}

async function restorePeer(p: Peer, old: PeerNode, primary: PeerNode, round: number): Promise<void> {
  if (!(await waitHealthy(p.nodes, 5_000))) await p.restore(old, primary);
  if (!(await waitHealthy(p.nodes, 300_000)))
    throw new BrokenRound(`${p.name} failover round ${round}: the pair was not healthy again (one primary, one streaming standby) within 300 s`);
}

async function switchyardSwitchover(s: SwitchyardStage, round: number): Promise<void> {
  await measureSwitchover(
    'switchyard',
    round,
    s.nodes,
    async (_from, to) => {
      const site = s.nodes.find((n) => n.name === to.name)!.site;
      const id = `bench-peers-switchover-${Date.now()}-${round}`;
      const r = await cliSwitchover(s, site, id);
      if (r.code !== 0 || r.result?.outcome !== 'completed')
        throw new Error(`switchyard switchover --to ${site} exited ${r.code}: ${r.output.trim().split('\n').slice(-8).join(' | ')}`);
      return { cli: { startMs: r.startMs, workflowMs: r.result ? r.result.durationSeconds * 1000 : null, steps: stepTimes(r.result.steps) } };
    },
    s.front,
  );
}

function machine(): string {
  let mem = `${(totalmem() / 2 ** 30).toFixed(1)} GiB`;
  try {
    const m = /MemTotal:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) mem = `${(Number(m[1]) / 2 ** 20).toFixed(1)} GiB`;
  } catch {
    /* os.totalmem then */
  }
  return `machine: ${cpus().length} CPUs (nproc), ${mem} memory, Linux ${release()}; ${new Date().toISOString()}`;
}

function printReport(peers: Peer[]): void {
  const so = (t: Tool) => switchovers.filter((r) => r.tool === t);
  const fo = (t: Tool) => failovers.filter((r) => r.tool === t);
  const row3 = (xs: (number | null)[]) => {
    const s = summarize(xs);
    return s ? [ms(s.median), ms(s.p90), ms(s.max)] : ['n/a', 'n/a', 'n/a'];
  };
  const med = (xs: (number | null)[]) => summarize(xs)?.median ?? null;

  out();
  out(`planned switchover, ${rounds} rounds per tool, interleaved, back and forth; one writer every 20 ms on whichever node takes writes`);
  const srows = TOOLS.flatMap((t) => {
    const r = so(t);
    const rows = [
      [
        t,
        String(r.length),
        ...row3(r.map((x) => x.downtimeMs)),
        String(r.reduce((a, x) => a + x.lost, 0)),
        ms(med(r.map((x) => x.commandMs))),
        ms(med(r.map((x) => x.streamingMs))),
      ],
    ];
    if (t === 'switchyard' && r.some((x) => x.front))
      rows.push([
        '  through the front',
        String(r.length),
        ...row3(r.map((x) => x.front?.downtimeMs ?? null)),
        String(r.reduce((a, x) => a + (x.front?.lost ?? 0), 0)),
        '',
        '',
      ]);
    return rows;
  });
  out(formatTable(['tool', 'rounds', 'downtime median', 'p90', 'max', 'lost writes', 'command (median)', 'command + old primary streaming'], srows));
  for (const p of peers) out(`  ${p.name}: ${p.switchoverCommand}`);
  out('  switchyard: node bin/switchyard.js switchover demo --to <site> --wait (a subprocess; command wall time includes its start-up)');

  out();
  out(
    `unplanned failover, ${failoverRounds} rounds per tool: the primary's postmaster killed (SIGKILL) → first write acknowledged by a PostgreSQL other than the killed one`,
  );
  const frows = TOOLS.map((t) => {
    const r = fo(t);
    const where = [...new Set(r.map((x) => (x.inPlace ? 'restarted in place' : 'the other node')))].join(', ') || 'n/a';
    return [t, String(r.length), ...row3(r.map((x) => x.killToWriteMs)), String(r.reduce((a, x) => a + x.lost, 0)), where];
  });
  out(formatTable(['tool', 'rounds', 'kill → first write median', 'p90', 'max', 'lost writes', 'writes came back on'], frows));
  const sy = fo('switchyard');
  if (sy.length) {
    const auto = sy.filter((x) => x.note.startsWith('automatic')).length;
    out(
      `  switchyard: the watch (every ${WATCH.everySeconds} s, ${WATCH.failures} failures: switchyard watch's defaults), failover.automatic: true; ` +
        `${auto} of ${sy.length} went on by themselves${auto < sy.length ? `, ${sy.length - auto} STAGED AND APPROVED AT ONCE BY THE BENCH (${[...new Set(sy.filter((x) => !x.note.startsWith('automatic')).map((x) => x.note))].join('; ')})` : ''}; ` +
        `through the front: median ${ms(med(sy.map((x) => x.front?.killToWriteMs ?? null)))}`,
    );
  }
  for (const p of peers) out(`  ${p.name}: ${p.failoverBy}`);

  out();
  out("changed from each tool's defaults, and why:");
  for (const p of peers) for (const c of p.changes) out(`  ${p.name}: ${c}`);
  out(
    '  switchyard: failover.automatic: true in the sandbox topology (the issue asks for automatic mode); the watch acknowledged after each round (`watch ack`), since anti-flapping makes the next failover manual until then',
  );

  // Where switchyard's switchover time goes: its step log, median per step over the rounds.
  const cli = so('switchyard').filter((r) => r.cli);
  if (cli.length) {
    out();
    out('switchyard switchover, where the command time goes (median over the rounds, from the run step log):');
    out(
      `  CLI spawn → run started in Temporal: ${ms(med(cli.map((r) => r.cli!.startMs)))}; run duration: ${ms(med(cli.map((r) => r.cli!.workflowMs)))}; CLI exit after the run: ${ms(med(cli.map((r) => (r.cli!.startMs !== null && r.cli!.workflowMs !== null ? r.commandMs - r.cli!.startMs - r.cli!.workflowMs : null))))}`,
    );
    const names: string[] = [];
    for (const r of cli) for (const s of r.cli!.steps) if (!names.includes(s.name)) names.push(s.name);
    const steps = names.map((n) => {
      // Only the rounds that ran the step (steps are named per site: half the rounds go the other way).
      const ran = cli.map((r) => r.cli!.steps.filter((s) => s.name === n)).filter((x) => x.length);
      const d = ran.map((x) => x.reduce((a, s) => a + s.ms, 0));
      const g = ran.map((x) => x.reduce((a, s) => a + s.gapMs, 0));
      return [n, ms(pct(d, 0.5)), ms(pct(g, 0.5))];
    });
    out(
      formatTable(
        ['  step', 'duration', 'gap before it (negative: ran beside the one before)'],
        steps.map((s) => [`  ${s[0]}`, s[1], s[2]]),
      ),
    );
  }

  // Targets.
  const syMed = med(so('switchyard').map((r) => r.downtimeMs));
  const peerMed = (t: Tool) => med(so(t).map((r) => r.downtimeMs));
  const fastestPeerCmd = Math.min(...peers.map((p) => med(so(p.name).map((r) => r.streamingMs)) ?? Infinity));
  const bestPeerFail = Math.min(...peers.map((p) => med(fo(p.name).map((r) => r.killToWriteMs)) ?? Infinity));
  out();
  out('targets:');
  out(`  switchover write downtime median ≤ ${TARGET.downtimeMedianMs} ms: ${against(syMed, TARGET.downtimeMedianMs, ' ms')}`);
  for (const p of peers) {
    const m = peerMed(p.name);
    out(
      `  switchover write downtime median ≤ ${TARGET.peerFactor} × ${p.name}'s (${ms(m)}): ${against(syMed, m === null ? null : m * TARGET.peerFactor, ' ms')}`,
    );
  }
  const syLost = so('switchyard').reduce((a, r) => a + r.lost + (r.front?.lost ?? 0), 0);
  out(`  switchover lost writes = 0: ${syLost === 0 ? 'met' : `missed (${syLost})`}`);
  out(
    `  switchover command wall time (until the old primary streams) ≤ the fastest peer's (${ms(fastestPeerCmd)}): ${against(med(so('switchyard').map((r) => r.streamingMs)), fastestPeerCmd, ' ms')}`,
  );
  out(`  failover kill → first write ≤ the best peer's (${ms(bestPeerFail)}): ${against(med(sy.map((r) => r.killToWriteMs)), bestPeerFail, ' ms')}`);
  out();
  out(`switchover write downtime medians: switchyard ${ms(syMed)}; ${peers.map((p) => `${p.name} ${ms(peerMed(p.name))}`).join('; ')}`);
  for (const l of ratioLines(
    syMed,
    peers.map((p) => ({ name: p.name, median: peerMed(p.name) })),
  ))
    out(l);
}

async function toolVersions(h: PeerHost, bins: Record<string, string>): Promise<void> {
  const v = async (cmd: string, args: string[]) => ((await h.run(cmd, args, { timeoutMs: 10_000 }).catch(() => null))?.stdout ?? '').trim().split('\n')[0];
  versions.push(
    `PostgreSQL ${(await v('/usr/lib/postgresql/15/bin/postgres', ['--version'])).replace(/^postgres \(PostgreSQL\) /, '')}`,
    await v(bins.repmgr, ['--version']),
    await v(bins.pgAutoctl, ['version']),
    `patroni ${(await v(bins.patroni, ['--version'])).split(' ').pop()}`,
    `etcd ${(await v(bins.etcd, ['--version'])).replace(/^etcd Version: /, '')}`,
  );
}

/** Set once SIGINT/SIGTERM arrived: the handler cleans up and exits; main's own failures then are the interruption's. */
let interruptedBy: NodeJS.Signals | null = null;

async function main(): Promise<number> {
  const bins = JSON.parse(readFileSync(resolve(__dirname, '../.tools/peers.json'), 'utf8')) as Record<string, string>;
  const host = new PeerHost();
  let sandbox: SandboxOptions | null = null;
  // Interrupted (Ctrl-C, a timeout's TERM): the peer clusters and the sandbox go too, as when it finishes.
  const interrupted = (sig: NodeJS.Signals) => {
    interruptedBy = sig;
    log(`bench/peers: ${sig}: stopping the peer clusters and the sandbox`);
    void host
      .stopAll()
      .then(() => host.remove())
      .then(() => (sandbox ? sandboxDown(sandbox).finally(() => sandbox?.net !== undefined && releaseNet(sandbox.net)) : undefined))
      .finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  out(machine());
  let broken: Error | null = null;
  const peers: Peer[] = [];
  try {
    await toolVersions(host, bins);
    out(`tools: ${versions.join('; ')}`);
    out(
      `peer clusters under ${host.root}, ports picked at runtime on 127.0.0.1; the sandbox's settings on every node: ${Object.entries(SANDBOX_TUNING)
        .filter(([k]) =>
          ['shared_buffers', 'fsync', 'wal_level', 'wal_log_hints', 'hot_standby_feedback', 'wal_receiver_status_interval', 'max_connections'].includes(k),
        )
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')} …`,
    );
    await withSwitchyardStage(
      (o) => {
        sandbox = o;
      },
      async (s) => {
        // Set up while the worker runs: a worker that never ran cannot be closed (its connection is still held).
        await s.worker.runUntil(async () => {
          log('sandbox up; setting up repmgr, pg_auto_failover, patroni');
          peers.push(await repmgrPair(host, SANDBOX_TUNING, { repmgr: bins.repmgr, repmgrd: bins.repmgrd }));
          log('repmgr pair up');
          peers.push(await autoFailoverFormation(host, SANDBOX_TUNING, { pgAutoctl: bins.pgAutoctl }));
          log('pg_auto_failover formation up');
          peers.push(await patroniPair(host, SANDBOX_TUNING, { patroni: bins.patroni, patronictl: bins.patronictl, etcd: bins.etcd }));
          log('patroni pair up');
          try {
            for (let i = 1; i <= rounds; i++) {
              await switchyardSwitchover(s, i);
              for (const p of peers) await measureSwitchover(p.name, i, p.nodes, (from, to) => p.switchover(from, to));
            }
            await startWatch(s);
            let previous: string | null = null;
            for (let i = 1; i <= failoverRounds; i++) {
              const primary = await primaryOf(s.nodes);
              if (!primary) throw new BrokenRound(`switchyard failover round ${i}: no single primary before the round`);
              await watchSees(s, primary.name, 120_000);
              await measureFailover(
                'switchyard',
                i,
                s.nodes,
                (n) => killNode(s, n.name),
                async () => {
                  const f = await followStagedFailover(s, previous, 300_000);
                  previous = f.workflowId;
                  return f.automatic ? `automatic (${f.workflowId})` : `staged, approved at once by the bench at ${f.approvedByBench.join(', ')}`;
                },
                async (old) => {
                  await rejoinAndAck(s, old.name, i);
                  const p = await primaryOf(s.nodes);
                  if (p) await watchSees(s, p.name, 120_000);
                },
                s.front,
              );
              for (const p of peers)
                await measureFailover(
                  p.name,
                  i,
                  p.nodes,
                  async (n) => {
                    const at = Date.now();
                    await killPostmaster(n.dataDir);
                    return at;
                  },
                  async () => '',
                  (old, primary) => restorePeer(p, old, primary, i),
                );
            }
            await stopWatch(s);
          } catch (err) {
            if (!(err instanceof BrokenRound)) throw err;
            broken = err;
            await stopWatch(s).catch(() => undefined);
          }
        });
        printReport(peers);
      },
    );
  } finally {
    const left = await host.stopAll();
    host.remove();
    if (left.length) log(`bench/peers: processes survived SIGKILL: ${left.join(', ')}`);
  }
  if (broken) {
    log(`bench/peers: BROKEN ROUND: ${(broken as Error).message}`);
    return 1;
  }
  return 0;
}

main()
  .then((code) => (interruptedBy ? undefined : process.exit(code)))
  .catch((err: unknown) => {
    if (interruptedBy) return; // the signal handler exits once everything is stopped
    process.stderr.write(`bench/peers: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
