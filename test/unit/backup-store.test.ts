/**
 * The offsite store's pure parts: its topology section (and WAL archiving's), the hashing stream
 * that refuses bytes that are not the manifest's before an upload completes, merging the backup
 * host's catalog with the store's, the manifest's record of objects, and readiness's archive check
 * (a lag that cannot be read fails a set maximum).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { ConfigError, loadTopology, parseTopology } from '../../src/topology/load';
import { clusterLayout } from '../../src/topology/layout';
import { ChecksumMismatch, checkedStream } from '../../src/activities/backup/store-client';
import { mergeCatalogs } from '../../src/activities/backup/store-catalog';
import { parseStoreRecord } from '../../src/activities/backup/pg-catalog';
import type { PgBackupEntry } from '../../src/contract/backup';
import { assessReadiness } from '../../src/workflows/lib/readiness-assess';
import type { Observations } from '../../src/contract/readiness';
import type { WalArchiveStatus } from '../../src/contract/wal-archive';

const examplePath = join(__dirname, '../../examples/switchyard.yaml');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function problemsOf(change: (b: Obj) => void): string[] {
  const doc = parse(readFileSync(examplePath, 'utf8')) as Obj;
  change(doc.clusters.shop.backup);
  try {
    parseTopology(stringify(doc), 'edited.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  return [];
}

describe('backup.store and backup.archive in the topology', () => {
  it('the example has both, with defaults', () => {
    const c = loadTopology(examplePath).clusters.shop;
    assert.equal(c.backup?.store?.partSizeMiB, 16);
    assert.equal(c.backup?.store?.concurrency, 4);
    assert.equal(c.backup?.archive?.slot, 'switchyard_archive');
    const l = clusterLayout('shop', c);
    assert.equal(l.backup?.store, 's3://shop-db-backups/switchyard/');
    assert.deepEqual(l.backup?.archive, { slot: 'switchyard_archive', intervalSeconds: 5, maxLagSeconds: 300 });
  });

  it('bad input names the field and what was expected', () => {
    assert.deepEqual(
      problemsOf((b) => (b.store.bucket = 'My_Bucket')),
      ['clusters.shop.backup.store.bucket: expected an S3 bucket name: 3 to 63 lowercase letters, digits, "." and "-", got "My_Bucket"'],
    );
    assert.match(problemsOf((b) => (b.store.prefix = '/abs/'))[0], /store\.prefix: expected "" or path segments each ending in "\/"/);
    assert.match(problemsOf((b) => (b.store.prefix = 'a/../'))[0], /store\.prefix: a prefix may not hold "\." or "\.\." segments/);
    assert.match(problemsOf((b) => (b.store.partSizeMiB = 4))[0], /store\.partSizeMiB: S3 parts are at least 5 MiB/);
    assert.match(
      problemsOf((b) => ((b.store.serverSideEncryption = 'AES256'), (b.store.kmsKeyId = 'k')))[0],
      /store\.kmsKeyId: kmsKeyId needs serverSideEncryption: "aws:kms"/,
    );
    assert.match(problemsOf((b) => (b.archive.slot = 'Bad-Slot'))[0], /archive\.slot: expected a replication slot name/);
    assert.deepEqual(
      problemsOf((b) => delete b.archive),
      ['clusters.shop.backup.maxArchiveLag: maxArchiveLag bounds the WAL archive: it needs backup.archive'],
    );
  });
});

describe('the upload check', () => {
  const body = Buffer.from('x'.repeat(100_000));
  const sha256 = createHash('sha256').update(body).digest('hex');
  const sink = () =>
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    });

  it('passes exactly the manifest bytes, and counts and hashes them', async () => {
    const c = checkedStream({ bytes: body.length, sha256 }, 'base.tar.gz');
    await pipeline(Readable.from([body.subarray(0, 40_000), body.subarray(40_000)]), c, sink());
    assert.equal(c.bytes(), body.length);
    assert.equal(c.sha256(), sha256);
  });

  it('refuses a short read or a changed byte at the end, before the upload reading it completes', async () => {
    const short = checkedStream({ bytes: body.length, sha256 }, 'base.tar.gz on dc2-app');
    await assert.rejects(pipeline(Readable.from([body.subarray(0, 99_999)]), short, sink()), (e: Error) => {
      assert.ok(e instanceof ChecksumMismatch);
      assert.equal(e.message, 'base.tar.gz on dc2-app: 99999 bytes, the manifest says 100000');
      return true;
    });
    const bad = Buffer.from(body);
    bad[500] ^= 1;
    const changed = checkedStream({ bytes: body.length, sha256 }, 'base.tar.gz');
    await assert.rejects(pipeline(Readable.from([bad]), changed, sink()), /base\.tar\.gz: SHA-256 [0-9a-f]{16}…, the manifest says [0-9a-f]{16}…/);
  });
});

describe('the catalog: the backup host and the store', () => {
  const m = (id: string, finishedAt: string) => ({ backupId: id, finishedAt, startedAt: finishedAt }) as unknown as PgBackupEntry['manifest'];
  const entry = (id: string, at: string, extra: Partial<PgBackupEntry> = {}): PgBackupEntry => ({
    backupId: id,
    dir: `/b/demo/${id}`,
    complete: true,
    manifest: m(id, at),
    drill: null,
    modifiedAt: null,
    ...extra,
  });
  it('one entry per backup id, saying where it is; an unfinished upload does not make it "in the store"', () => {
    const host = [entry('b1', '2026-12-01T00:00:00Z'), entry('b2', '2026-12-02T00:00:00Z')];
    const stored = [
      entry('b0', '2026-11-30T00:00:00Z', { dir: 's3://x/demo/b0/', location: ['store'] }),
      entry('b2', '2026-12-02T00:00:00Z', { dir: 's3://x/demo/b2/', location: ['store'] }),
      entry('b1', '2026-12-01T00:00:00Z', { complete: false, manifest: null, location: ['store'] }),
    ];
    const merged = mergeCatalogs(host, stored);
    assert.deepEqual(
      merged.map((e) => [e.backupId, e.location]),
      [
        ['b2', ['host', 'store']],
        ['b1', ['host']],
        ['b0', ['store']],
      ],
    );
  });

  it("the manifest's record of objects is checked field by field", () => {
    const ok = {
      url: 's3://x/p/demo/b1/',
      bucket: 'x',
      keyPrefix: 'p/demo/b1/',
      uploadedAt: '2026-12-04T00:00:00Z',
      serverSideEncryption: null,
      objects: [{ name: 'base.tar.gz', key: 'p/demo/b1/base.tar.gz', bytes: 3, sha256: 'a'.repeat(64), versionId: 'v1' }],
    };
    assert.deepEqual(parseStoreRecord(ok), ok);
    assert.throws(() => parseStoreRecord({ ...ok, objects: [{ ...ok.objects[0], key: 'elsewhere/base.tar.gz' }] }), /store\.objects\[0\]\.key/);
    assert.throws(() => parseStoreRecord({ ...ok, objects: [{ ...ok.objects[0], sha256: 'nope' }] }), /store\.objects\[0\]\.sha256/);
  });
});

describe('readiness: the WAL archive', () => {
  const layout = clusterLayout('shop', loadTopology(examplePath).clusters.shop);
  const o = (archive: Observations['archive']): Observations => ({
    layout,
    nodes: [],
    probe: null,
    lags: [],
    ssh: [],
    services: [],
    maintenance: [],
    traffic: [],
    ec2: null,
    archive,
  });
  const status = (over: Partial<WalArchiveStatus>): WalArchiveStatus => ({
    cluster: 'shop',
    running: true,
    pid: 1,
    source: 'eu1-db',
    streaming: true,
    primaryLsn: '0/5000000',
    flushLsn: '0/5000000',
    lagBytes: 0,
    lagSeconds: 0,
    newest: null,
    segments: 1,
    problems: [],
    detail: 'pg_receivewal (pid 1) streams from eu1-db: 0 bytes, 0 s behind',
    ...over,
  });
  const check = (a: Observations['archive']) => assessReadiness(o(a), '2026-01-01T00:00:00.000Z').checks.find((c) => c.name === 'archive');
  it('within backup.maxArchiveLag is fine; past it, unknown or unreadable is not', () => {
    assert.equal(check(status({ lagSeconds: 12 }))?.ok, true);
    assert.equal(check(status({ lagSeconds: 301 }))?.ok, false);
    assert.equal(check(status({ lagSeconds: null, lagBytes: null, running: false, detail: 'archive lag unknown: pg_receivewal is not running' }))?.ok, false);
    assert.match(check({ error: 'ssh: cannot connect' })?.detail ?? '', /could not be read: ssh: cannot connect; maximum 5 min/);
    assert.equal(check({ error: 'x' })?.ok, false);
    const r = assessReadiness(o(status({ lagSeconds: 2, lagBytes: 4096 })), '2026-01-01T00:00:00.000Z');
    assert.equal(r.archiveLagSeconds, 2);
    assert.equal(r.archiveLagBytes, 4096);
  });
});
