/**
 * The offsite store end to end on the sandbox (real PostgreSQL and sshd hosts, moto's S3 in the
 * sandbox's moto_server, a versioned bucket), checked as an operator would: the objects in the
 * bucket and their SHA-256 against the manifest and the files on the backup host, one version
 * per key and no unfinished upload, a drill of a backup the backup host lost, a damaged object
 * named, retention removing a backup's objects, and the worker SIGKILLed mid-upload.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { PgBackupManifest, PgStoreRecord } from '../../src/contract/backup';
import type { BackupResult, BackupRetentionResult, DrillResult } from '../../src/workflows/backup';
import { STORE_BUCKET, STORE_PREFIX } from '../../sandbox/s3';
import { startStage, type Stage } from '../support/stage';
import { storeOf } from '../support/store';
import { failureOf, sleep, waitReplayed } from '../support/runs';
import { startWorkerProcess, stopWorkerProcesses } from '../support/worker';

const log = (s: string) => process.stdout.write(`# ${s}\n`);
const keyPrefix = (id: string) => `${STORE_PREFIX}demo/${id}/`;

async function bodyOf(s3: S3Client, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: STORE_BUCKET, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

async function versionsUnder(s3: S3Client, prefix: string): Promise<{ key: string; versionId: string }[]> {
  const r = await s3.send(new ListObjectVersionsCommand({ Bucket: STORE_BUCKET, Prefix: prefix }));
  return [...(r.Versions ?? []), ...(r.DeleteMarkers ?? [])].map((v) => ({ key: v.Key!, versionId: v.VersionId! }));
}

async function unfinishedUploads(s3: S3Client, prefix: string): Promise<string[]> {
  const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: STORE_BUCKET, Prefix: prefix }));
  return (r.Uploads ?? []).map((u) => u.Key!);
}

async function exists(s3: S3Client, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: STORE_BUCKET, Key: key }));
    return true;
  } catch {
    return false;
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('backups in the offsite store', () => {
  let st: Stage;
  let s3: S3Client;
  const dirOf = (id: string) => join(st.cluster.backup!.root, 'demo', id);
  before(async () => {
    st = await startStage({ worker: false });
    s3 = storeOf(st).s3;
  });
  after(async () => {
    await stopWorkerProcesses();
    s3?.destroy();
    await st?.down();
  });

  it(
    'uploads every file with the manifest checksums; a drill downloads a backup the host lost; a damaged object is named; retention removes objects; a worker killed mid-upload leaves one version per key',
    { timeout: 420_000 },
    async () => {
      const worker = () => startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
      let w = worker();
      await w.waitFor((l) => l.msg === 'worker started');

      // 1. A backup is uploaded after its manifest, every object with the manifest's SHA-256.
      const id1 = `store-a-${Date.now()}`;
      const b1 = (await (await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], retention: false }, id1)).result()) as BackupResult;
      assert.equal(b1.pg?.store?.url, `s3://${STORE_BUCKET}/${keyPrefix(id1)}`);
      const manifest = JSON.parse(readFileSync(join(dirOf(id1), 'switchyard-manifest.json'), 'utf8')) as PgBackupManifest;
      for (const f of manifest.files) {
        const body = await bodyOf(s3, `${keyPrefix(id1)}${f.name}`);
        assert.equal(body.length, f.bytes, `${f.name}: size in the bucket`);
        assert.equal(sha(body), f.sha256, `${f.name}: the object's SHA-256 is the manifest's`);
        assert.equal(sha(readFileSync(join(dirOf(id1), f.name))), f.sha256, `${f.name}: and the file's on the backup host`);
      }
      const stored = JSON.parse((await bodyOf(s3, `${keyPrefix(id1)}switchyard-manifest.json`)).toString('utf8')) as PgBackupManifest & {
        store: PgStoreRecord;
      };
      assert.deepEqual(
        stored.store.objects.map((o) => [o.name, o.key, o.sha256]),
        manifest.files.map((f) => [f.name, `${keyPrefix(id1)}${f.name}`, f.sha256]),
        'the manifest in the store records each object and its checksum',
      );
      assert.deepEqual(stored.files, manifest.files);
      const record = JSON.parse(readFileSync(join(dirOf(id1), 'switchyard-store.json'), 'utf8')) as PgStoreRecord;
      assert.deepEqual(record.objects, stored.store.objects, 'the backup host records the same objects');
      // The base backup's objects (a file set of the same backup lies under files/<set>/ beside them).
      const baseKeys = [...manifest.files.map((f) => `${keyPrefix(id1)}${f.name}`), `${keyPrefix(id1)}switchyard-manifest.json`].sort();
      const v1 = (await versionsUnder(s3, keyPrefix(id1))).filter((v) => !v.key.slice(keyPrefix(id1).length).includes('/'));
      assert.deepEqual(v1.map((v) => v.key).sort(), baseKeys, 'one version per object');
      const upload = b1.steps.find((s) => s.name === 'upload');
      assert.equal(upload?.state, 'done');
      log(`upload: ${upload?.detail}`);

      // 2. The backup host loses it: a drill downloads it from the store, checks it and passes.
      rmSync(dirOf(id1), { recursive: true, force: true });
      const listed = (await (
        await st.start('backupRetention', { cluster: 'demo', requestedBy: 'alice', dryRun: true }, `catalog-${Date.now()}`)
      ).result()) as BackupRetentionResult;
      const catalog = listed.steps.find((s) => s.name === 'catalog:pg');
      assert.ok(
        listed.decisions.some((x) => x.backupId === id1 && x.pg),
        `still in the catalog, from the store: ${catalog?.detail}`,
      );
      const d = (await (await st.start('drill', { cluster: 'demo', from: id1, requestedBy: 'alice' }, `drill-${id1}`)).result()) as DrillResult;
      assert.equal(d.ok, true, d.detail);
      assert.ok(d.drill.fetched, 'downloaded from the store');
      assert.equal(d.drill.fetched?.files, manifest.files.length);
      assert.ok((d.rowCounts['public.sandbox_rows'] ?? 0) > 0, `rows counted: ${JSON.stringify(d.rowCounts)}`);
      for (const f of manifest.files) assert.equal(sha(readFileSync(join(dirOf(id1), f.name))), f.sha256, `${f.name} downloaded intact`);
      assert.ok(await exists(s3, `${keyPrefix(id1)}drill.json`), 'the drill record is in the store too');
      log(`drill from the store: ${d.drill.fetched?.detail}`);

      // 3. One changed byte in an object: the download refuses it, naming the file.
      const id2 = `store-b-${Date.now()}`;
      await (await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], retention: false }, id2)).result();
      const key = `${keyPrefix(id2)}base.tar.gz`;
      const good = await bodyOf(s3, key);
      const bad = Buffer.from(good);
      bad[Math.floor(bad.length / 2)] ^= 0x01;
      await s3.send(new PutObjectCommand({ Bucket: STORE_BUCKET, Key: key, Body: bad }));
      rmSync(dirOf(id2), { recursive: true, force: true });
      const failed = await failureOf((await st.start('drill', { cluster: 'demo', from: id2, requestedBy: 'alice' }, `drill-${id2}`)).result());
      assert.match(failed.message, /base\.tar\.gz/, failed.message);
      assert.match(failed.message, /SHA-256/);
      assert.equal(existsSync(dirOf(id2)), false, 'nothing of it is left on the backup host');
      assert.equal(existsSync(`${dirOf(id2)}.fetch`), false);
      log(`damaged: ${failed.message.slice(0, 300)}`);

      // 4. The worker SIGKILLed while a file is being uploaded: the resumed run finishes the upload once.
      await st.nodeQuery(
        'dc1-db',
        `CREATE TABLE public.big AS SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) AS pad FROM generate_series(1, 250000) g`,
      );
      await waitReplayed(st, 'dc2-db', 'dc1-db', 120_000);
      const id3 = `store-crash-${Date.now()}`;
      const h3 = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], retention: false }, id3);
      for (const t0 = Date.now(); (await unfinishedUploads(s3, keyPrefix(id3))).length === 0; await sleep(20))
        assert.ok(Date.now() - t0 < 180_000, 'a multipart upload began');
      assert.equal((await w.kill('SIGKILL')).signal, 'SIGKILL');
      const atKill = await unfinishedUploads(s3, keyPrefix(id3));
      assert.equal(await exists(s3, `${keyPrefix(id3)}switchyard-manifest.json`), false, 'killed before the backup counted as stored');
      log(`killed while uploading ${atKill.join(', ')}`);
      w = worker();
      const b3 = (await h3.result()) as BackupResult;
      const m3 = JSON.parse(readFileSync(join(dirOf(id3), 'switchyard-manifest.json'), 'utf8')) as PgBackupManifest;
      const versions = (await versionsUnder(s3, keyPrefix(id3))).filter((v) => !v.key.slice(keyPrefix(id3).length).includes('/'));
      assert.deepEqual(
        versions.map((v) => v.key).sort(),
        [...m3.files.map((f) => `${keyPrefix(id3)}${f.name}`), `${keyPrefix(id3)}switchyard-manifest.json`].sort(),
        'exactly one version of each object, no duplicate',
      );
      assert.deepEqual(await unfinishedUploads(s3, keyPrefix(id3)), [], 'no unfinished upload left');
      for (const f of m3.files) assert.equal(sha(await bodyOf(s3, `${keyPrefix(id3)}${f.name}`)), f.sha256, `${f.name} complete`);
      const up3 = b3.steps.find((s) => s.name === 'upload');
      assert.match(up3?.detail ?? '', /aborted 1 unfinished upload/, up3?.detail);
      log(`resumed upload: ${up3?.detail}`);

      // 5. Retention deletes a backup's objects with it (every version), and keeps the newest.
      const r = (await (
        await st.start('backupRetention', { cluster: 'demo', requestedBy: 'alice', keepLast: 1, maxAge: '1s' }, `retention-${Date.now()}`)
      ).result()) as BackupRetentionResult;
      assert.ok(r.deleted.includes(id2), `deleted: ${r.deleted.join(', ')}`);
      assert.deepEqual(await versionsUnder(s3, keyPrefix(id2)), [], 'no object version of a deleted backup is left');
      assert.ok((await versionsUnder(s3, keyPrefix(id3))).length > 0, 'the newest backup kept');
      assert.equal(r.deleted.includes(id3), false);
      await w.stop();
    },
  );
});
