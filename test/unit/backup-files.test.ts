/**
 * File sets' pure parts (src/activities/backup/file-set-parts.ts): the listing script run here
 * for real (find, sha256sum) and its parser, a path outside the set refused, the manifest's
 * checks, the archive's encryption (a wrong key, a changed tag, a changed byte and another set's
 * archive refused), the staged copy's check, and the swap script run here on a scratch directory
 * (the old files moved aside, never deleted). Also the topology section's refusals and the
 * backup list's merge.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import {
  ArchiveAuthFailed,
  archiveAad,
  checkRequestedPath,
  checkStaged,
  deriveKeys,
  digestWith,
  LIST_SH,
  listingChange,
  OpenStream,
  parseFileSetKey,
  parseFileSetManifest,
  parseListing,
  parseSwap,
  SealStream,
  selectEntries,
  SWAP_SH,
  toManifestEntry,
} from '../../src/activities/backup/file-set-parts';
import { ChecksumMismatch } from '../../src/activities/backup/store-client';
import { FILE_SET_FORMAT, type FileSetEntry, type FileSetManifest } from '../../src/contract/backup-files';
import { fileSetSchema } from '../../src/topology/backup-files';
import { mergeBackupList } from '../../src/workflows/backup-list';

const scratch = mkdtempSync(join(tmpdir(), 'switchyard-files-unit-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const sh = (script: string, ...args: string[]) => execFileSync('sh', ['-c', script, 'sh', ...args], { encoding: 'utf8' });
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A small set: a directory 0750 with a key 0600, a certificate, a symlink, a name with a tab and a newline. */
function makeSet(root: string): string {
  const ca = join(root, 'opt', 'app', 'ca');
  mkdirSync(join(ca, 'sub'), { recursive: true });
  writeFileSync(join(ca, 'ca.key'), 'PRIVATE KEY\n');
  chmodSync(join(ca, 'ca.key'), 0o600);
  writeFileSync(join(ca, 'ca.crt'), 'CERTIFICATE\n');
  chmodSync(join(ca, 'ca.crt'), 0o644);
  writeFileSync(join(ca, 'sub', 'odd\tname\nhere'), 'odd');
  symlinkSync('ca.crt', join(ca, 'current.pem'));
  chmodSync(ca, 0o750);
  return ca;
}

function manifestOf(entries: FileSetEntry[], paths: string[], over: Partial<FileSetManifest> = {}): FileSetManifest {
  return {
    format: FILE_SET_FORMAT,
    cluster: 'demo',
    backupId: 'b1',
    set: 'ca',
    host: 'app1',
    paths,
    mode: 'keep-permissions',
    createdAt: '2025-01-01T00:00:00.000Z',
    entries,
    files: entries.filter((e) => e.kind === 'file').length,
    totalBytes: entries.reduce((s, e) => s + e.bytes, 0),
    digest: 'sha256',
    archive: { name: 'files.tar', bytes: 10240, sha256: 'a'.repeat(64) },
    encryption: null,
    ...over,
  };
}

describe('file sets: listing a host', () => {
  const ca = makeSet(join(scratch, 'list'));
  const listing = parseListing(sh(LIST_SH, 'strict', ca, join(scratch, 'list', 'gone')));

  it('lists every entry with its kind, mode, owner, size, SHA-256 and symlink target; names a missing path', () => {
    assert.deepEqual(listing.missing, [join(scratch, 'list', 'gone')]);
    const by = new Map(listing.entries.map((e) => [e.path, e]));
    assert.deepEqual(
      listing.entries.map((e) => e.path),
      [ca, join(ca, 'ca.crt'), join(ca, 'ca.key'), join(ca, 'current.pem'), join(ca, 'sub'), join(ca, 'sub', 'odd\tname\nhere')],
      'sorted, parents first, odd names intact',
    );
    const key = by.get(join(ca, 'ca.key'))!;
    assert.equal(key.kind, 'file');
    assert.equal(key.mode, '0600');
    assert.equal(key.bytes, 12);
    assert.equal(key.sha256, sha('PRIVATE KEY\n'));
    assert.equal(key.uid, process.getuid!());
    assert.equal(by.get(ca)!.mode, '0750');
    assert.equal(by.get(ca)!.kind, 'dir');
    assert.equal(by.get(join(ca, 'current.pem'))!.target, 'ca.crt');
    assert.equal(by.get(join(ca, 'sub', 'odd\tname\nhere'))!.sha256, sha('odd'));
  });

  it('a listing under a staging directory gives the paths relative to it, and a cut-short listing is refused', () => {
    const root = join(scratch, 'list');
    const rel = parseListing(sh(LIST_SH, 'strict', root), root);
    assert.ok(rel.entries.some((e) => e.path === '/opt/app/ca/ca.key'));
    assert.ok(!rel.entries.some((e) => e.path === '' || e.path === root));
    const full = sh(LIST_SH, 'strict', ca);
    assert.throws(() => parseListing(full.slice(0, full.indexOf('S\t'))), /cut short/);
  });

  it('"=<dir>" lists the directory alone (one above a restored part), not what is under it', () => {
    const l = parseListing(sh(LIST_SH, 'strict', `=${ca}`, join(ca, 'ca.key')));
    assert.deepEqual(
      l.entries.map((e) => e.path),
      [ca, join(ca, 'ca.key')],
    );
  });

  it('a file listed without its checksum (unreadable) is refused, unless the listing is of what a restore replaces', () => {
    const text = `f\t1\t1\tu\tg\t600\t3\0\0/x/a\0S\t\0\0\0`;
    assert.throws(() => parseListing(text), /no checksum was printed for \/x\/a/);
    assert.equal(parseListing(text, undefined, { lenient: true }).entries[0].sha256, null);
  });

  it('a socket or fifo cannot be in a set; two listings that differ say what changed', () => {
    const fifo = join(scratch, 'list', 'fifo');
    execFileSync('mkfifo', [fifo]);
    const l = parseListing(sh(LIST_SH, 'strict', fifo));
    assert.throws(() => toManifestEntry(l.entries[0], (s) => s, 'app1'), /not a regular file, directory or symlink/);
    const a = listing.entries.map((e) => toManifestEntry(e, (s) => s, 'app1'));
    const b = a.map((e) => (e.path.endsWith('ca.key') ? { ...e, sha256: 'f'.repeat(64) } : e));
    assert.match(listingChange(a, b) ?? '', /ca\.key changed/);
    assert.equal(listingChange(a, a), null);
  });
});

describe('file sets: paths outside the set are refused', () => {
  const declared = ['/opt/app/ca', '/etc/app/tls'];
  it('accepts the set and what is under it', () => {
    assert.equal(checkRequestedPath('/opt/app/ca', 'ca', declared), '/opt/app/ca');
    assert.equal(checkRequestedPath('/opt/app/ca/ca.key', 'ca', declared), '/opt/app/ca/ca.key');
    assert.equal(checkRequestedPath('/etc/app/tls/sub/', 'ca', declared), '/etc/app/tls/sub');
  });
  for (const [p, why] of [
    ['/opt/app/ca/../../../etc/shadow', /"\." or "\.\." segments/],
    ['../etc/passwd', /not an absolute path/],
    ['/opt/app/ca-evil/x', /outside the set/],
    ['/opt/app', /outside the set/],
    ['/etc/passwd', /outside the set \(its paths: \/opt\/app\/ca, \/etc\/app\/tls\); nothing was changed/],
    [42, /not an absolute path/],
  ] as const) {
    it(`refuses ${JSON.stringify(p)}`, () => assert.throws(() => checkRequestedPath(p, 'ca', declared), why));
  }

  it('a restore of part of the set takes its entries and the directories above them; a path the backup lacks is refused', () => {
    const e = (path: string, kind: FileSetEntry['kind']): FileSetEntry => ({
      path,
      kind,
      uid: 0,
      gid: 0,
      user: 'root',
      group: 'root',
      mode: '0755',
      bytes: 0,
      sha256: kind === 'file' ? 'a'.repeat(64) : null,
      target: kind === 'symlink' ? 'x' : null,
    });
    const all = [e('/opt/app/ca', 'dir'), e('/opt/app/ca/a', 'file'), e('/opt/app/ca/sub', 'dir'), e('/opt/app/ca/sub/b', 'file'), e('/opt/app/ca/z', 'file')];
    assert.deepEqual(
      selectEntries(all, ['/opt/app/ca/sub/b'], 'ca').map((x) => x.path),
      ['/opt/app/ca', '/opt/app/ca/sub', '/opt/app/ca/sub/b'],
    );
    assert.equal(selectEntries(all, undefined, 'ca').length, all.length);
    assert.throws(() => selectEntries(all, ['/opt/app/ca/nope'], 'ca'), /holds nothing at \/opt\/app\/ca\/nope; nothing was changed/);
  });
});

describe('file sets: the manifest', () => {
  const ca = makeSet(join(scratch, 'manifest'));
  const entries = parseListing(sh(LIST_SH, 'strict', ca)).entries.map((e) => toManifestEntry(e, (s) => s, 'app1'));
  const good = manifestOf(entries, [ca]);

  it('round-trips and is tied to its cluster, backup and set', () => {
    const m = parseFileSetManifest(JSON.stringify(good), { cluster: 'demo', backupId: 'b1', set: 'ca' });
    assert.deepEqual(m.entries, entries);
    assert.throws(() => parseFileSetManifest(JSON.stringify(good), { cluster: 'demo', backupId: 'b1', set: 'other' }), /not other of b1 of demo/);
  });

  it('refuses an entry outside its paths, a path with "..", unsorted entries, and encryption that does not agree with the archive', () => {
    const outside = { ...good, entries: [...entries, { ...entries[1], path: '/etc/shadow' }] };
    assert.throws(() => parseFileSetManifest(JSON.stringify(outside)), /outside the set's paths/);
    const dots = { ...good, entries: [{ ...entries[0], path: `${ca}/../../x` }] };
    assert.throws(() => parseFileSetManifest(JSON.stringify(dots)), /not a normalised absolute path/);
    const unsorted = { ...good, entries: [...entries].reverse() };
    assert.throws(() => parseFileSetManifest(JSON.stringify(unsorted)), /not sorted/);
    const mixed = { ...good, archive: { ...good.archive, name: 'files.tar.enc' } };
    assert.throws(() => parseFileSetManifest(JSON.stringify(mixed)), /do not agree/);
  });
});

describe('file sets: the key and the archive encryption', () => {
  const key = randomBytes(32);
  const keys = deriveKeys(key);
  const aad = archiveAad('demo', 'b1', 'ca');
  const plain = randomBytes(200_000);

  async function seal(data: Buffer): Promise<{ body: Buffer; iv: Buffer; tag: Buffer }> {
    const iv = randomBytes(12);
    const s = new SealStream(keys.enc, iv, aad);
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => chunks.push(c));
    await pipeline(Readable.from([data.subarray(0, 70_000), data.subarray(70_000)]), s, sink);
    return { body: Buffer.concat(chunks), iv, tag: s.tag() };
  }
  async function open(body: Buffer, k: Buffer, iv: Buffer, tag: Buffer, a = aad, expect = { bytes: body.length, sha256: sha(body) }): Promise<Buffer> {
    const o = new OpenStream(expect, 'ca', { key: deriveKeys(k).enc, iv: iv.toString('hex'), tag: tag.toString('hex'), aad: a });
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => chunks.push(c));
    await pipeline(Readable.from([body]), o, sink);
    return Buffer.concat(chunks);
  }

  it('the key is 64 hex digits or base64 of 32 bytes; anything else is refused without showing it', () => {
    assert.deepEqual(parseFileSetKey(key.toString('hex'), 'k'), key);
    assert.deepEqual(parseFileSetKey(`${key.toString('base64')}\n`, 'k'), key);
    const short = 'c2hvcnQta2V5LXZhbHVl';
    assert.throws(
      () => parseFileSetKey(short, 'backup.files.ca.key ({ file: /k })'),
      (err: Error) => /backup\.files\.ca\.key .*not a usable key: expected 32 random bytes/.test(err.message) && !err.message.includes(short),
    );
    assert.notEqual(deriveKeys(randomBytes(32)).id, keys.id, 'another key has another id');
    assert.equal(deriveKeys(key).id, keys.id);
  });

  it('round trip: what is sealed opens with the same key, and the ciphertext holds no plaintext', async () => {
    const s = await seal(plain);
    assert.equal(s.body.length, plain.length);
    assert.equal(s.body.includes(plain.subarray(1000, 1032)), false);
    assert.deepEqual(await open(s.body, key, s.iv, s.tag), plain);
  });

  it('a wrong key, a changed tag, a changed byte (checksum updated to match) and another set’s associated data are refused', async () => {
    const s = await seal(plain);
    await assert.rejects(open(s.body, randomBytes(32), s.iv, s.tag), ArchiveAuthFailed);
    const tag = Buffer.from(s.tag);
    tag[0] ^= 1;
    await assert.rejects(open(s.body, key, s.iv, tag), ArchiveAuthFailed);
    const body = Buffer.from(s.body);
    body[12345] ^= 1;
    await assert.rejects(open(body, key, s.iv, s.tag), ArchiveAuthFailed);
    await assert.rejects(open(s.body, key, s.iv, s.tag, archiveAad('demo', 'b1', 'other')), ArchiveAuthFailed);
  });

  it('a changed byte against the manifest’s SHA-256 is named as damage before the tag is looked at', async () => {
    const s = await seal(plain);
    const body = Buffer.from(s.body);
    body[5] ^= 1;
    await assert.rejects(open(body, key, s.iv, s.tag, aad, { bytes: s.body.length, sha256: sha(s.body) }), ChecksumMismatch);
    await assert.rejects(open(s.body.subarray(1), key, s.iv, s.tag, aad, { bytes: s.body.length, sha256: sha(s.body) }), /bytes, the manifest says/);
  });

  it('an encrypted set records keyed digests: the same content, another key, another digest', () => {
    const h = sha('PRIVATE KEY\n');
    assert.notEqual(digestWith(keys.mac)(h), h);
    assert.notEqual(digestWith(deriveKeys(randomBytes(32)).mac)(h), digestWith(keys.mac)(h));
    assert.equal(digestWith(null)(h), h);
  });
});

describe('file sets: checking a staged copy and moving it into place', () => {
  it('checkStaged: an extra entry and a changed byte are problems; an owner that differs is reported as not kept', () => {
    const root = join(scratch, 'staged');
    const ca = makeSet(join(root, 'src'));
    const entries = parseListing(sh(LIST_SH, 'strict', ca)).entries.map((e) => toManifestEntry(e, (s) => s, 'app1'));
    const stage = join(root, 'stage');
    mkdirSync(stage);
    execFileSync('cp', ['-a', join(root, 'src', 'opt'), stage]);
    const staged = () => parseListing(sh(LIST_SH, 'strict', stage), stage);
    // The staged copy lies under <stage><path>: the manifest's paths are absolute on the source.
    const asStaged = manifestOf(
      entries.map((e) => ({ ...e, path: e.path.slice(join(root, 'src').length) })),
      [ca.slice(join(root, 'src').length)],
    );
    assert.deepEqual(
      checkStaged(asStaged, staged(), (s) => s, true),
      { problems: [], notKept: [] },
    );
    writeFileSync(join(stage, 'opt', 'app', 'ca', 'extra'), 'x');
    writeFileSync(join(stage, 'opt', 'app', 'ca', 'ca.crt'), 'CERTIFICATX\n');
    const c = checkStaged(asStaged, staged(), (s) => s, true);
    assert.ok(
      c.problems.some((p) => /ca\.crt does not match the manifest/.test(p)),
      c.problems.join('; '),
    );
    assert.ok(c.problems.some((p) => /holds \/opt\/app\/ca\/extra, which is not in the manifest/.test(p)));
    const otherOwner = { ...asStaged, entries: asStaged.entries.map((e) => (e.path.endsWith('ca.key') ? { ...e, uid: 4242, user: 'ca-admin' } : e)) };
    const o = checkStaged(otherOwner, staged(), (s) => s, true);
    assert.deepEqual(
      o.notKept.map((n) => [n.path, n.what, n.expected.startsWith('ca-admin:')]),
      [['/opt/app/ca/ca.key', 'owner', true]],
    );
    assert.equal(checkStaged(otherOwner, staged(), (s) => s, false).notKept.length, 0, 'contents-only keeps no owners');
  });

  it('SWAP_SH moves what is in the way aside (never deleting it), leaves what already matches, makes directories and places symlinks', () => {
    const root = join(scratch, 'swap');
    const stage = join(root, 'stage');
    const dest = join(root, 'live', 'ca');
    mkdirSync(join(stage, dest, 'sub'), { recursive: true });
    writeFileSync(join(stage, dest, 'ca.key'), 'NEW KEY');
    chmodSync(join(stage, dest, 'ca.key'), 0o600);
    writeFileSync(join(stage, dest, 'same.txt'), 'same');
    chmodSync(join(stage, dest, 'same.txt'), 0o644);
    writeFileSync(join(stage, dest, 'sub', 'b'), 'b');
    symlinkSync('ca.key', join(stage, dest, 'link'));
    mkdirSync(dest, { recursive: true });
    writeFileSync(join(dest, 'ca.key'), 'OLD KEY');
    writeFileSync(join(dest, 'same.txt'), 'same');
    chmodSync(join(dest, 'same.txt'), 0o644);
    writeFileSync(join(dest, 'sub'), 'a file where a directory belongs');
    writeFileSync(join(dest, 'unrelated'), 'stays');
    const pairs = [
      'd',
      dest,
      'f',
      join(dest, 'ca.key'),
      'l',
      join(dest, 'link'),
      'f',
      join(dest, 'same.txt'),
      'd',
      join(dest, 'sub'),
      'f',
      join(dest, 'sub', 'b'),
    ];
    const out = parseSwap(execFileSync('sh', ['-c', SWAP_SH, 'sh', stage, '.switchyard-20250101T000000Z', ...pairs], { encoding: 'utf8' }));
    assert.deepEqual(out.same.sort(), [dest, join(dest, 'same.txt')].sort());
    assert.deepEqual(out.placed, [join(dest, 'ca.key'), join(dest, 'link'), join(dest, 'sub'), join(dest, 'sub', 'b')]);
    assert.deepEqual(out.aside, [
      { path: join(dest, 'ca.key'), to: `${join(dest, 'ca.key')}.switchyard-20250101T000000Z` },
      { path: join(dest, 'sub'), to: `${join(dest, 'sub')}.switchyard-20250101T000000Z` },
    ]);
    assert.equal(readFileSync(join(dest, 'ca.key'), 'utf8'), 'NEW KEY');
    assert.equal(statSync(join(dest, 'ca.key')).mode & 0o777, 0o600);
    assert.equal(readFileSync(`${join(dest, 'ca.key')}.switchyard-20250101T000000Z`, 'utf8'), 'OLD KEY', 'the old file is kept aside');
    assert.equal(readFileSync(`${join(dest, 'sub')}.switchyard-20250101T000000Z`, 'utf8'), 'a file where a directory belongs');
    assert.equal(readlinkSync(join(dest, 'link')), 'ca.key');
    assert.ok(lstatSync(join(dest, 'sub')).isDirectory());
    assert.equal(readFileSync(join(dest, 'unrelated'), 'utf8'), 'stays', 'what the set does not hold is left alone');
    // Again, with the old copy's name taken: a second suffix, still nothing deleted.
    writeFileSync(join(stage, dest, 'ca.key'), 'NEWER');
    writeFileSync(join(dest, 'ca.key'), 'CHANGED');
    const again = parseSwap(execFileSync('sh', ['-c', SWAP_SH, 'sh', stage, '.switchyard-20250101T000000Z', 'f', join(dest, 'ca.key')], { encoding: 'utf8' }));
    assert.deepEqual(again.aside, [{ path: join(dest, 'ca.key'), to: `${join(dest, 'ca.key')}.switchyard-20250101T000000Z.1` }]);
    assert.equal(readFileSync(`${join(dest, 'ca.key')}.switchyard-20250101T000000Z`, 'utf8'), 'OLD KEY');
    assert.ok(existsSync(`${join(dest, 'ca.key')}.switchyard-20250101T000000Z.1`));
  });
});

describe('file sets: the topology section', () => {
  const ok = { host: 'app1', paths: ['/opt/app/ca'] };
  it('defaults to keep-permissions, unencrypted', () => {
    assert.deepEqual(fileSetSchema.parse(ok), { ...ok, mode: 'keep-permissions', encrypt: false });
  });
  for (const [input, why] of [
    [{ ...ok, encrypt: true }, /encrypt: true needs "key"/],
    [{ ...ok, key: { file: '/k' } }, /only used with encrypt: true/],
    [{ ...ok, paths: ['opt/app'] }, /absolute path/],
    [{ ...ok, paths: ['/opt/app/../etc'] }, /normalised/],
    [{ ...ok, paths: ['/'] }, /other than "\/"/],
    [{ ...ok, paths: ['/opt/app/'] }, /normalised/],
    [{ ...ok, paths: ['/opt/app', '/opt/app/ca'] }, /is under \/opt\/app/],
    [{ ...ok, paths: [] }, /at least one path/],
    [{ ...ok, mode: 'chmod-all' }, /keep-permissions/],
  ] as const) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      const r = fileSetSchema.safeParse(input);
      assert.equal(r.success, false);
      assert.match(r.error!.issues.map((i) => i.message).join('; '), why);
    });
  }
});

describe('file sets: the backup list', () => {
  it('one entry per backup id, newest first, with its file sets', () => {
    const list = mergeBackupList(
      [
        {
          backupId: 'old',
          dir: '/b/old',
          complete: true,
          manifest: { finishedAt: '2025-01-01T00:00:00Z', totalBytes: 5, sourceNode: 'dc1-db' } as never,
          drill: null,
          modifiedAt: null,
          location: ['host', 'store'],
        },
        {
          backupId: 'new',
          dir: '/b/new',
          complete: true,
          manifest: { finishedAt: '2025-02-01T00:00:00Z', totalBytes: 7, sourceNode: 'dc2-db' } as never,
          drill: null,
          modifiedAt: null,
        },
      ],
      [],
      [{ backupId: 'old', set: 'ca', host: 'app1', createdAt: '2025-01-01T00:01:00Z', files: 3, totalBytes: 100, encrypted: true, location: ['store'] }],
    );
    assert.deepEqual(
      list.map((b) => [b.backupId, b.pg?.location, b.files.map((f) => f.set)]),
      [
        ['new', ['host'], []],
        ['old', ['host', 'store'], ['ca']],
      ],
    );
  });
});
