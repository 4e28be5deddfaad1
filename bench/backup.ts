/**
 * The `backup` workflow's PostgreSQL part against a plain `pg_basebackup` of the same database,
 * interleaved in one run on one sandbox. The database is first grown to at least 1 GB. The plain
 * run is what an operator types on the backup server: `pg_basebackup -F t -z -X stream -c fast`
 * from the standby into a directory, with the same compression level; the workflow adds choosing
 * the source, the manifest (sizes and SHA-256 of every file), the atomic rename and retention.
 * Prints each wall time, the median of each and the ratio of the medians.
 *
 *   node --import tsx bench/backup.ts [rounds=3] [sizeGB=1]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { TASK_QUEUE } from '../src/temporal-target';
import type { BackupResult } from '../src/workflows/backup';
import { withBenchStage } from './stage';

const rounds = Number(process.argv[2] ?? 3);
const sizeGB = Number(process.argv[3] ?? 1);
const cluster = 'demo';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main() {
  await withBenchStage(40, async ({ worker, client, topology }) => {
    const c = topology.clusters[cluster];
    const backup = c.backup!;
    const [primaryName, primary] = Object.entries(c.postgres.nodes).find(([, n]) => n.site === c.preferredPrimary)!;
    const [standbyName, standby] = Object.entries(c.postgres.nodes).find(([n]) => n !== primaryName)!;
    const password = readFileSync(c.postgres.password!.file!, 'utf8').trim();
    const login = (n: { host: string; port: number }) =>
      new pg.Client({ host: n.host, port: n.port, user: c.postgres.user, password, database: c.postgres.database });
    const db = login(primary);
    await db.connect();
    try {
      // Grow the database: rows of random-ish text so gzip has real work (not all zeros).
      const t0 = Date.now();
      await db.query('CREATE TABLE IF NOT EXISTS public.bench_fill (id bigserial PRIMARY KEY, pad text)');
      for (;;) {
        const { rows } = await db.query('SELECT pg_database_size(current_database())::bigint AS b');
        if (Number(rows[0].b) >= sizeGB * 1024 ** 3) break;
        await db.query(
          `INSERT INTO public.bench_fill (pad) SELECT md5(g::text || random()::text) || repeat(md5(random()::text), 14) FROM generate_series(1, 200000) g`,
        );
      }
      // Settle the pages (hint bits, visibility map, frozen tuples) so every copy reads the same data.
      await db.query('VACUUM (FREEZE, ANALYZE) public.bench_fill');
      await db.query('CHECKPOINT');
      const { rows: size } = await db.query('SELECT pg_size_pretty(pg_database_size(current_database())) AS s');
      // Let the standby catch up before either copy starts.
      const { rows: lsn } = await db.query('SELECT pg_current_wal_lsn()::text AS l');
      const sb = login(standby);
      await sb.connect();
      for (;;) {
        const { rows } = await sb.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn[0].l]);
        if (rows[0].ok) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      await sb.end();
      process.stdout.write(
        `database ${size[0].s} (filled in ${Math.round((Date.now() - t0) / 1000)} s); backups from ${standbyName} to ${backup.root} on ${backup.host}\n`,
      );

      const byHandMs: number[] = [];
      const workflowMs: number[] = [];
      const runAs = execFileSync('stat', ['-c', '%U', backup.root]).toString().trim();
      await worker.runUntil(async () => {
        for (let i = 0; i < rounds; i++) {
          // By hand, as the backup server's user: the same source, format, compression and WAL method.
          const dir = join(backup.root, `by-hand-${i}`);
          const t1 = Date.now();
          execFileSync(
            'runuser',
            [
              '-u',
              runAs,
              '--',
              join(backup.binDir, 'pg_basebackup'),
              '-h',
              standby.host,
              '-p',
              String(standby.port),
              '-U',
              c.postgres.replication.user,
              '-D',
              dir,
              '-F',
              't',
              '-z',
              '-Z',
              String(backup.compressLevel),
              '-X',
              'stream',
              '-c',
              'fast',
              '--no-password',
            ],
            {
              env: { ...process.env, PGPASSFILE: backup.passfile ?? c.postgres.passfile ?? '' },
              stdio: 'ignore',
            },
          );
          byHandMs.push(Date.now() - t1);
          execFileSync('rm', ['-rf', dir]);

          const t2 = Date.now();
          const r = (await client.workflow.execute('backup', {
            taskQueue: TASK_QUEUE,
            workflowId: `bench-backup-${i}-${Date.now()}`,
            args: [{ cluster, kinds: ['pg'], requestedBy: 'bench', retention: false }],
          })) as BackupResult;
          workflowMs.push(Date.now() - t2);
          process.stdout.write(
            `round ${i + 1}: by hand ${(byHandMs[i] / 1000).toFixed(1)} s, workflow ${(workflowMs[i] / 1000).toFixed(1)} s (base backup step ${r.pg?.durationSeconds} s, ${((r.pg?.totalBytes ?? 0) / 1024 ** 2).toFixed(0)} MiB compressed)\n`,
          );
          execFileSync('rm', ['-rf', r.pg!.dir]);
        }
      });
      const h = median(byHandMs);
      const w = median(workflowMs);
      process.stdout.write(`\nplain pg_basebackup: median ${(h / 1000).toFixed(1)} s  [${byHandMs.map((x) => (x / 1000).toFixed(1)).join(', ')}]\n`);
      process.stdout.write(`backup workflow (pg): median ${(w / 1000).toFixed(1)} s  [${workflowMs.map((x) => (x / 1000).toFixed(1)).join(', ')}]\n`);
      process.stdout.write(`ratio workflow / by hand: ${(w / h).toFixed(2)}x\n`);
    } finally {
      await db.end().catch(() => undefined);
    }
  });
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  process.exitCode = 1;
});
