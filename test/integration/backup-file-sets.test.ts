/**
 * File sets end to end on the sandbox (real sshd hosts, moto's S3): the sandbox's "ca" set (a
 * CA's private key 0600, its public half, a symlink; encrypt: true) backed up with a base backup,
 * checked as an operator would: the archive on the backup host and in the bucket is ciphertext
 * (no byte of the key file in the bucket), `switchyard backup list` shows it; the originals
 * changed and removed, a restore naming a path outside the set refused with nothing changed, then
 * a restore puts back the original bytes, modes and owners, keeping the changed files aside; the
 * backup host loses the set and it is restored from the store; a changed byte in the store is
 * refused with nothing changed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { FileSetManifest } from '../../src/contract/backup-files';
import type { BackupResult } from '../../src/workflows/backup';
import type { BackupListResult } from '../../src/workflows/backup-list';
import type { RestoreResult } from '../../src/workflows/restore';
import { STORE_BUCKET, STORE_PREFIX } from '../../sandbox/s3';
import { startStage, type Stage } from '../support/stage';
import { storeOf } from '../support/store';
import { failureOf } from '../support/runs';
import { cli, killClis, shown } from '../support/cli';

const log = (s: string) => process.stdout.write(`# ${s}\n`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Seen {
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  sha256?: string;
  target?: string;
}

/** Every entry under `dir` as an operator sees it (ls -l, sha256sum), leaving out the moved-aside copies and `skip`. */
function snapshot(dir: string, skip: string[] = []): Record<string, Seen> {
  const out: Record<string, Seen> = {};
  const walk = (p: string) => {
    const st = lstatSync(p);
    const kind = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file';
    out[p] = {
      kind,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      ...(kind === 'file' ? { sha256: sha(readFileSync(p)) } : {}),
      ...(kind === 'symlink' ? { target: readlinkSync(p) } : {}),
    };
    if (kind === 'dir') for (const n of readdirSync(p).sort()) if (!n.includes('.switchyard-') && !skip.includes(join(p, n))) walk(join(p, n));
  };
  walk(dir);
  return out;
}

describe('file sets', () => {
  let st: Stage;
  let s3: S3Client;
  before(async () => {
    // A second, plain set beside the sandbox's encrypted "ca": a database host's etc/ (its app.conf).
    st = await startStage({
      edit: (c) => {
        const files = (c.backup as { files: Record<string, { host: string; paths: string[] }> }).files;
        const dir = dirname(dirname(files.ca.paths[0]));
        files.conf = { host: 'dc1-db', paths: [join(dir, 'dc1-db', 'etc')] };
      },
    });
    s3 = storeOf(st).s3;
  });
  after(async () => {
    killClis();
    s3?.destroy();
    await st?.down();
  });

  it(
    'backs up the CA set encrypted; a restore puts back its bytes, modes and owners with the changed files kept aside; a path outside the set and a damaged archive are refused with nothing changed',
    { timeout: 420_000 },
    async () => {
      const set = st.cluster.backup!.files!.ca;
      const ca = set.paths[0];
      const key = join(ca, 'ca.key');
      const pub = join(ca, 'ca.pub.pem');
      const link = join(ca, 'current.pem');
      const asRoot = process.getuid?.() === 0 && lstatSync(ca).uid !== 0;
      // As root, one file owned by root: the SSH user (the sandbox's run-as user) cannot give it back.
      if (asRoot) chownSync(pub, 0, 0);
      const original = snapshot(ca);
      assert.equal(original[key].mode, 0o600);
      assert.equal(original[link].kind, 'symlink');
      const keyBytes = readFileSync(key);

      // 1. A backup archives the set, encrypted, beside its base backup and in the store.
      const id = `files-${Date.now()}`;
      const b = (await (await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], retention: false }, id)).result()) as BackupResult;
      const plainSet = b.files?.find((f) => f.set === 'conf');
      assert.equal(plainSet?.encrypted, false);
      assert.equal(plainSet?.files, 1);
      const made = b.files?.find((f) => f.set === 'ca');
      assert.ok(made, `the backup archived the set: ${JSON.stringify(b.steps.map((s) => [s.name, s.state]))}`);
      assert.equal(made.encrypted, true);
      assert.equal(made.files, 2);
      assert.equal(made.symlinks, 1);
      assert.equal(made.store?.uploaded, true);
      log(b.steps.find((s) => s.name === 'files:ca')?.detail ?? '');
      const dir = join(st.cluster.backup!.root, 'demo', id, 'files', 'ca');
      const manifest = JSON.parse(readFileSync(join(dir, 'files-manifest.json'), 'utf8')) as FileSetManifest;
      const archive = readFileSync(join(dir, 'files.tar.enc'));
      assert.equal(sha(archive), manifest.archive.sha256);
      assert.equal(manifest.encryption?.algorithm, 'aes-256-gcm');
      assert.equal(manifest.digest, 'hmac-sha256');
      const keyEntry = manifest.entries.find((e) => e.path === key)!;
      assert.equal(keyEntry.mode, '0600');
      assert.notEqual(keyEntry.sha256, sha(keyBytes), 'the manifest does not give away the key file’s SHA-256');
      const pem = keyBytes.toString('utf8').split('\n')[1];
      assert.equal(archive.includes(keyBytes), false, 'the archive on the backup host is ciphertext');
      assert.equal(archive.includes(Buffer.from(pem)), false);
      const prefix = `${STORE_PREFIX}demo/${id}/files/ca/`;
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: STORE_BUCKET, Prefix: prefix }));
      const keys = (listed.Contents ?? []).map((o) => o.Key!).sort();
      assert.deepEqual(keys, [`${prefix}files-manifest.json`, `${prefix}files.tar.enc`]);
      for (const k of keys) {
        const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: STORE_BUCKET, Key: k }))).Body!.transformToByteArray());
        assert.equal(body.includes(Buffer.from(pem)), false, `${k} holds no byte of the private key`);
        if (k.endsWith('.enc')) assert.equal(sha(body), manifest.archive.sha256, 'the object is the archive on the backup host');
      }

      // The plain set is an ordinary tar an operator can read (tar -tvf), with the manifest's SHA-256.
      const confDir = st.cluster.backup!.files!.conf.paths[0];
      const conf = join(confDir, 'app.conf');
      const confBytes = readFileSync(conf);
      const plainDir = join(st.cluster.backup!.root, 'demo', id, 'files', 'conf');
      const plainManifest = JSON.parse(readFileSync(join(plainDir, 'files-manifest.json'), 'utf8')) as FileSetManifest;
      assert.equal(plainManifest.entries.find((e) => e.path === conf)?.sha256, sha(confBytes));
      assert.match(execFileSync('tar', ['-tvf', join(plainDir, 'files.tar')], { encoding: 'utf8' }), /dc1-db\/etc\/app\.conf/);

      // 2. `switchyard backup list` shows it.
      const list = (await (await st.start('backupList', { cluster: 'demo', requestedBy: 'alice' }, `list-${id}`)).result()) as BackupListResult;
      const entry = list.backups.find((x) => x.backupId === id);
      assert.deepEqual(
        entry?.files.map((f) => [f.set, f.files, f.encrypted, f.location]),
        [
          ['ca', 2, true, ['host', 'store']],
          ['conf', 1, false, ['host', 'store']],
        ],
      );
      assert.equal(entry?.pg?.complete, true);
      const shownList = await cli(st, ['backup', 'list', 'demo']);
      assert.equal(shownList.code, 0, shown(shownList));
      const row = shownList.stdout.split('\n').find((x) => x.startsWith(id)) ?? '';
      assert.match(row, /ca \(dc1-app, 2 files, .*encrypted, host\+store\)/, shown(shownList));
      // `backup <cluster>` is still the backup itself.
      const dry = await cli(st, ['backup', 'demo', '--dry-run', '--kinds', 'pg']);
      assert.equal(dry.code, 0, shown(dry));
      assert.match(dry.stdout, /files:ca/, shown(dry));
      const unknown = await cli(st, ['restore', 'demo', '--from', id, '--files', 'nope', '--target', set.host]);
      assert.notEqual(unknown.code, 0);
      assert.match(unknown.stderr, /no file set "nope" in backup\.files; known: ca/, shown(unknown));

      // 3. The originals change: the key rewritten, the public half's mode changed, the symlink removed; an unrelated file appears.
      writeFileSync(key, 'not the key any more\n');
      chmodSync(pub, 0o600);
      unlinkSync(link);
      writeFileSync(join(ca, 'unrelated.txt'), 'not in the set');
      const changed = snapshot(ca);
      const plan = await cli(st, ['restore', 'demo', '--from', id, '--files', 'ca', '--target', set.host, '--dry-run', '--json']);
      assert.equal(plan.code, 0, shown(plan));
      const planned = (JSON.parse(plan.stdout) as { result: RestoreResult }).result;
      assert.equal(planned.outcome, 'planned');
      assert.deepEqual(planned.files?.plan.differ.sort(), [key, pub].sort(), 'the dry run names the files that differ');
      assert.deepEqual(planned.files?.plan.missing, [link]);
      assert.deepEqual(snapshot(ca), changed, 'a dry run changes nothing');

      // 4. A path outside the set is refused before anything is touched.
      for (const p of [`${ca}/../etc/app.conf`, join(ca, '..'), `${ca}-other/x`, '/etc/passwd']) {
        const f = await failureOf(
          (
            await st.start('restore', { cluster: 'demo', from: id, target: set.host, files: 'ca', paths: [p], requestedBy: 'alice' }, `refused-${Date.now()}`)
          ).result(),
        );
        assert.match(f.message, /refused/, f.message);
        assert.match(f.message, /nothing was changed/);
      }
      assert.deepEqual(snapshot(ca), changed, 'nothing changed');
      assert.deepEqual(
        readdirSync(ca).filter((n) => n.includes('.switchyard-')),
        [],
        'nothing moved aside',
      );

      // 5. The restore: the original bytes, modes and owners back; what was there kept aside; the unrelated file left.
      const r = (await (
        await st.start('restore', { cluster: 'demo', from: id, target: set.host, files: 'ca', requestedBy: 'alice' }, `restore-${id}`)
      ).result()) as RestoreResult;
      assert.equal(r.outcome, 'completed', r.state);
      log(r.steps.find((s) => s.name === 'restore-files')?.detail ?? '');
      const done = r.files!.restore!;
      assert.equal(done.from, 'host');
      const after1 = snapshot(ca, [join(ca, 'unrelated.txt')]);
      const expectOwner = (p: string) => (asRoot && p === pub ? { uid: lstatSync(ca).uid, gid: lstatSync(ca).gid } : {});
      assert.deepEqual(
        after1,
        Object.fromEntries(Object.entries(original).map(([p, s]) => [p, { ...s, ...expectOwner(p) }])),
        'bytes, kinds, modes and owners are the original’s',
      );
      assert.deepEqual(readFileSync(key), keyBytes);
      const asideKey = done.movedAside.find((a) => a.path === key)?.to;
      assert.ok(asideKey && asideKey.startsWith(`${key}.switchyard-`), JSON.stringify(done.movedAside));
      assert.equal(readFileSync(asideKey, 'utf8'), 'not the key any more\n', 'the changed key is kept aside');
      assert.ok(
        done.movedAside.some((a) => a.path === pub),
        'the file whose mode had changed was moved aside too',
      );
      assert.ok(done.placed.includes(link), 'the removed symlink is back');
      assert.equal(readFileSync(join(ca, 'unrelated.txt'), 'utf8'), 'not in the set', 'what the set does not hold is left alone');
      if (asRoot) {
        assert.deepEqual(
          done.notKept.map((n) => [n.path, n.what]),
          [[pub, 'owner']],
          'the owner the SSH user could not give back is reported',
        );
        assert.match(done.notKept[0].expected, /^root:root \(0:0\)$/);
      } else assert.deepEqual(done.notKept, []);

      log('restored from the backup host');
      // The plain set, one file of it, from the backup host.
      writeFileSync(conf, 'host = somebody else\n');
      const rc = (await (
        await st.start('restore', { cluster: 'demo', from: id, target: 'dc1-db', files: 'conf', paths: [conf], requestedBy: 'alice' }, `restore-conf-${id}`)
      ).result()) as RestoreResult;
      assert.deepEqual(readFileSync(conf), confBytes);
      assert.equal(readFileSync(rc.files!.restore!.movedAside[0].to, 'utf8'), 'host = somebody else\n');
      // 6. The backup host loses the set: restored from the store, the same.
      rmSync(dir, { recursive: true, force: true });
      writeFileSync(key, 'changed again\n');
      const r2 = (await (
        await st.start('restore', { cluster: 'demo', from: id, target: set.host, files: 'ca', paths: [key], requestedBy: 'alice' }, `restore2-${id}`)
      ).result()) as RestoreResult;
      assert.equal(r2.files?.restore?.from, 'store');
      assert.deepEqual(readFileSync(key), keyBytes);
      assert.equal(lstatSync(key).mode & 0o7777, 0o600);
      assert.deepEqual(r2.files?.restore?.placed, [key], 'only the path asked for');

      log('restored part of the set from the store');
      // 7. One changed byte of the stored archive: refused, nothing changed on the host.
      const objKey = `${prefix}files.tar.enc`;
      const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: STORE_BUCKET, Key: objKey }))).Body!.transformToByteArray());
      body[Math.floor(body.length / 2)] ^= 1;
      await s3.send(new PutObjectCommand({ Bucket: STORE_BUCKET, Key: objKey, Body: body }));
      writeFileSync(key, 'changed a third time\n');
      const before3 = snapshot(ca);
      const asideBefore = readdirSync(ca)
        .filter((n) => n.includes('.switchyard-'))
        .sort();
      const f = await failureOf(
        (await st.start('restore', { cluster: 'demo', from: id, target: set.host, files: 'ca', requestedBy: 'alice' }, `restore3-${id}`)).result(),
      );
      assert.match(f.message, /SHA-256/, f.message);
      assert.match(f.message, /files on dc1-app are unchanged/);
      assert.deepEqual(snapshot(ca), before3);
      assert.deepEqual(
        readdirSync(ca)
          .filter((n) => n.includes('.switchyard-'))
          .sort(),
        asideBefore,
      );
      assert.equal(
        existsSync(join(ca, '..')) && readdirSync(join(ca, '..')).some((n) => n.startsWith('.switchyard-files-')),
        false,
        'no staging directory is left behind',
      );
      log(`damaged: ${f.message.slice(0, 200)}`);
    },
  );
});
