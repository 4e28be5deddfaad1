/**
 * The `backup` workflow's PostgreSQL part against a plain `pg_basebackup` of the same database,
 * interleaved in one run on one sandbox. The database is first grown to at least 1 GB. The plain
 * run is what an operator types on the backup server: `pg_basebackup -F t -z -X stream -c fast`
 * from the standby into a directory, with the same compression level; the workflow adds choosing
 * the source, the manifest (sizes and SHA-256 of every file), the atomic rename and retention.
 * Prints each wall time, the median of each and the ratio of the medians.
 *
 * With a store (the sandbox has one): the workflow's upload step against an `aws s3 cp`-equivalent
 * raw upload of the same files from the same disk (lib-storage's multipart upload with the AWS
 * CLI's defaults: 8 MiB parts, 10 at once; no SSH, no checksums), interleaved, as time,
 * throughput and ratio. Then the WAL archive's lag under a pgbench write load (pgbench -c 4 for
 * 20 s against the primary), sampled every 250 ms from pg_stat_replication beside the standby's
 * own lag: p50, p99 and max in bytes and seconds.
 *
 *   node --import tsx bench/backup.ts [rounds=3] [sizeGB=1]
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { walArchiveStopSignal, walArchiveWorkflowId } from '../src/contract/wal-archive';
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
    db.on('error', () => undefined);
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
      const uploadMs: number[] = [];
      const rawMs: number[] = [];
      const uploadBytes: number[] = [];
      const store = backup.store;
      const s3 = store
        ? new S3Client({
            region: store.region,
            endpoint: store.endpoint,
            forcePathStyle: true,
            credentials: store.credentials
              ? {
                  accessKeyId: readFileSync(store.credentials.accessKeyId.file!, 'utf8').trim(),
                  secretAccessKey: readFileSync(store.credentials.secretAccessKey.file!, 'utf8').trim(),
                }
              : undefined,
          })
        : null;
      /** What `aws s3 cp --recursive` does: each file in 8 MiB parts, 10 at once, nothing checked. */
      const rawUpload = async (dir: string, prefix: string): Promise<number> => {
        const t = Date.now();
        for (const name of readdirSync(dir)) {
          if (!statSync(join(dir, name)).isFile()) continue;
          await new Upload({
            client: s3!,
            params: { Bucket: store!.bucket, Key: `${prefix}${name}`, Body: createReadStream(join(dir, name)) },
            partSize: 8 * 1024 * 1024,
            queueSize: 10,
          }).done();
        }
        return Date.now() - t;
      };
      const removePrefix = async (prefix: string) => {
        const l = await s3!.send(new ListObjectsV2Command({ Bucket: store!.bucket, Prefix: prefix }));
        const keys = (l.Contents ?? []).map((o) => ({ Key: o.Key! }));
        if (keys.length) await s3!.send(new DeleteObjectsCommand({ Bucket: store!.bucket, Delete: { Objects: keys } }));
      };
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
          if (s3 && r.pg?.store) {
            const raw = await rawUpload(r.pg.dir, `bench-raw/${i}/`);
            uploadMs.push(r.pg.store.durationSeconds * 1000);
            rawMs.push(raw);
            uploadBytes.push(r.pg.totalBytes);
            process.stdout.write(
              `         upload: workflow step ${r.pg.store.durationSeconds.toFixed(1)} s, raw (aws s3 cp equivalent) ${(raw / 1000).toFixed(1)} s for ${(r.pg.totalBytes / 1024 ** 2).toFixed(0)} MiB\n`,
            );
            await removePrefix('bench-raw/');
          }
          // Retention would do this: the backup and its objects go (the bench keeps nothing).
          execFileSync('rm', ['-rf', r.pg!.dir]);
          if (s3 && r.pg?.store) await removePrefix(`${store!.prefix}${cluster}/${r.backupId}/`);
        }
        // ---- the WAL archive's lag under a write load ------------------------------------------------
        if (backup.archive) {
          const ah = await client.workflow.start('walArchive', {
            taskQueue: TASK_QUEUE,
            workflowId: walArchiveWorkflowId(cluster),
            args: [{ cluster, requestedBy: 'bench' }],
          });
          const mon = login(primary);
          mon.on('error', () => undefined);
          await mon.connect();
          try {
            for (let i = 0; i < 120; i++) {
              const { rows } = await mon.query(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'switchyard-archive'`);
              if (rows[0].n > 0) break;
              await new Promise((r) => setTimeout(r, 250));
            }
            const pgbench = join(backup.binDir, 'pgbench');
            const env = { ...process.env, PGPASSWORD: password };
            const conn = ['-h', primary.host, '-p', String(primary.port), '-U', c.postgres.user, c.postgres.database];
            execFileSync(pgbench, ['-i', '-q', '-s', '5', ...conn], { env, stdio: 'ignore' });
            const load = new Promise<void>((resolve, reject) =>
              execFile(pgbench, ['-c', '4', '-j', '2', '-T', '20', '-n', ...conn], { env }, (err: Error | null) => (err ? reject(err) : resolve())).on(
                'error',
                reject,
              ),
            );
            let running = true;
            load.then(
              () => (running = false),
              () => (running = false),
            );
            const archive: { bytes: number; seconds: number }[] = [];
            const standbyLag: { bytes: number; seconds: number }[] = [];
            while (running) {
              const { rows } = await mon.query(
                `SELECT application_name AS a, pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint AS b, extract(epoch FROM coalesce(flush_lag, '0'))::float8 AS s,
                        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS rb, extract(epoch FROM coalesce(replay_lag, '0'))::float8 AS rs
                   FROM pg_stat_replication`,
              );
              for (const r of rows) {
                if (r.a === 'switchyard-archive') archive.push({ bytes: Number(r.b), seconds: Number(r.s) });
                else standbyLag.push({ bytes: Number(r.rb), seconds: Number(r.rs) });
              }
              await new Promise((r) => setTimeout(r, 250));
            }
            await load;
            const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
            const line = (what: string, xs: { bytes: number; seconds: number }[]) =>
              `${what}: ${xs.length} samples; bytes p50 ${q(
                xs.map((x) => x.bytes),
                0.5,
              )}, p99 ${q(
                xs.map((x) => x.bytes),
                0.99,
              )}, max ${Math.max(...xs.map((x) => x.bytes))}; ` +
              `seconds p50 ${q(
                xs.map((x) => x.seconds),
                0.5,
              ).toFixed(3)}, p99 ${q(
                xs.map((x) => x.seconds),
                0.99,
              ).toFixed(3)}, max ${Math.max(...xs.map((x) => x.seconds)).toFixed(3)}\n`;
            process.stdout.write(`\nunder pgbench -c 4 -T 20 on ${primaryName}:\n`);
            process.stdout.write(line('WAL archive (pg_receivewal --synchronous, flush)', archive));
            process.stdout.write(line(`standby ${standbyName} (replay)`, standbyLag));
            process.stdout.write(
              `archive lag ratio archive/standby (p99 seconds): ${(
                q(
                  archive.map((x) => x.seconds),
                  0.99,
                ) /
                Math.max(
                  1e-6,
                  q(
                    standbyLag.map((x) => x.seconds),
                    0.99,
                  ),
                )
              ).toFixed(2)}x\n`,
            );
          } finally {
            await mon.end().catch(() => undefined);
            await ah.signal(walArchiveStopSignal, { by: 'bench' });
            await ah.result().catch(() => undefined);
          }
        }
      });
      const h = median(byHandMs);
      const w = median(workflowMs);
      process.stdout.write(`\nplain pg_basebackup: median ${(h / 1000).toFixed(1)} s  [${byHandMs.map((x) => (x / 1000).toFixed(1)).join(', ')}]\n`);
      process.stdout.write(`backup workflow (pg): median ${(w / 1000).toFixed(1)} s  [${workflowMs.map((x) => (x / 1000).toFixed(1)).join(', ')}]\n`);
      process.stdout.write(`ratio workflow / by hand: ${(w / h).toFixed(2)}x${s3 ? ' (the workflow also uploads to the store: below)' : ''}\n`);
      if (uploadMs.length) {
        const u = median(uploadMs);
        const raw = median(rawMs);
        const mib = median(uploadBytes) / 1024 ** 2;
        process.stdout.write(
          `upload to the store: workflow step median ${(u / 1000).toFixed(1)} s (${(mib / (u / 1000)).toFixed(1)} MiB/s, streamed from the backup host over SSH, every byte hashed)` +
            `; raw median ${(raw / 1000).toFixed(1)} s (${(mib / (raw / 1000)).toFixed(1)} MiB/s, from the local disk)\n`,
        );
        process.stdout.write(`upload ratio workflow / raw: ${(u / raw).toFixed(2)}x\n`);
      }

      s3?.destroy();
    } finally {
      await db.end().catch(() => undefined);
    }
  });
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  process.exitCode = 1;
});
