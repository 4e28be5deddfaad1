/**
 * The offsite store (topology `backup.store`) as S3 calls: a client per activity call with the
 * credentials resolved from their references, the key layout (<prefix><cluster>/<backupId>/<file>),
 * and the object operations the backup activities share: streaming a file up (multipart, each
 * part checked by S3 against its SHA-256, the whole file hashed on the way and refused before it
 * completes when it is not the manifest's bytes), streaming one down, listing, and deleting every
 * version and unfinished upload under a backup's keys.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
  type ObjectIdentifier,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { StoreConfig } from '../../topology/backup-store';
import { configError } from '../resolver';
import { heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';

/** Metadata key (x-amz-meta-sha256) holding the whole object's SHA-256, hex. */
export const SHA256_METADATA = 'sha256';

export interface Store {
  s3: S3Client;
  cfg: StoreConfig;
  bucket: string;
  /** <prefix><cluster>/<backupId>/ */
  keyPrefix(cluster: string, backupId: string): string;
  /** s3://<bucket>/<key> */
  url(key: string): string;
}

/** The cluster's store section; null when it has none. */
export function storeConfig(call: Call, cluster: string): StoreConfig | null {
  return call.top.cluster(cluster).backup?.store ?? null;
}

/** <prefix><cluster>/ */
export function clusterPrefix(cfg: Pick<StoreConfig, 'prefix'>, cluster: string): string {
  return `${cfg.prefix}${cluster}/`;
}

/** A client for the cluster's store; always destroyed after `fn`. */
export async function withStore<T>(rt: Runtime, call: Call, cluster: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const cfg = storeConfig(call, cluster);
  if (!cfg) throw configError(`cluster "${cluster}" has no backup.store (bucket, region) in the topology`);
  const what = (k: string) => `backup.store.credentials.${k} of cluster "${cluster}"`;
  const credentials = cfg.credentials
    ? {
        accessKeyId: await call.secrets.get(cfg.credentials.accessKeyId, what('accessKeyId')),
        secretAccessKey: await call.secrets.get(cfg.credentials.secretAccessKey, what('secretAccessKey')),
        ...(cfg.credentials.sessionToken ? { sessionToken: await call.secrets.get(cfg.credentials.sessionToken, what('sessionToken')) } : {}),
      }
    : undefined;
  const s3 = new S3Client({
    region: cfg.region,
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle ?? cfg.endpoint !== undefined,
    credentials,
    maxAttempts: 5,
    retryMode: 'adaptive',
    requestHandler: { connectionTimeout: rt.timeouts.awsConnectMs, requestTimeout: Math.max(rt.timeouts.awsRequestMs, 120_000), throwOnRequestTimeout: true },
  });
  // A heartbeat per attempt: a call the SDK retries for long keeps the activity alive.
  s3.middlewareStack.add(
    (next) => async (args) => {
      heartbeat();
      return next(args);
    },
    { step: 'deserialize', name: 'switchyardAttemptHeartbeat', override: true },
  );
  const store: Store = {
    s3,
    cfg,
    bucket: cfg.bucket,
    keyPrefix: (c, id) => `${clusterPrefix(cfg, c)}${id}/`,
    url: (key) => `s3://${cfg.bucket}/${key}`,
  };
  try {
    return await fn(store);
  } finally {
    s3.destroy();
  }
}

/** The SDK's error name ("NoSuchKey", "NotFound" for a HEAD's 404, "AccessDenied" …). */
export function s3ErrorName(err: unknown): string {
  const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return e?.Code ?? e?.name ?? '';
}

function isNotFound(err: unknown): boolean {
  const name = s3ErrorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' || (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 404;
}

export interface ObjectHead {
  bytes: number;
  sha256: string | null;
  versionId: string | null;
}

/** Size, recorded SHA-256 and version of an object; null when there is none. */
export async function headObject(store: Store, key: string): Promise<ObjectHead | null> {
  try {
    const h = await store.s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key }));
    return { bytes: Number(h.ContentLength ?? -1), sha256: h.Metadata?.[SHA256_METADATA] ?? null, versionId: h.VersionId ?? null };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

function encryption(cfg: StoreConfig) {
  return {
    ...(cfg.serverSideEncryption ? { ServerSideEncryption: cfg.serverSideEncryption } : {}),
    ...(cfg.kmsKeyId ? { SSEKMSKeyId: cfg.kmsKeyId } : {}),
  };
}

/**
 * Hashes and counts what passes; at the end, refuses (errors the stream, so an upload reading it
 * is aborted instead of completed) when it is not `expect`'s bytes.
 */
export function checkedStream(expect: { bytes: number; sha256: string } | null, what: string): Transform & { bytes: () => number; sha256: () => string } {
  const hash = createHash('sha256');
  let bytes = 0;
  let digest = '';
  const t = new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      digest = hash.digest('hex');
      if (expect && bytes !== expect.bytes) cb(new ChecksumMismatch(`${what}: ${bytes} bytes, the manifest says ${expect.bytes}`));
      else if (expect && digest !== expect.sha256)
        cb(new ChecksumMismatch(`${what}: SHA-256 ${digest.slice(0, 16)}…, the manifest says ${expect.sha256.slice(0, 16)}…`));
      else cb();
    },
  });
  return Object.assign(t, { bytes: () => bytes, sha256: () => digest });
}

/** The bytes read were not the manifest's. */
export class ChecksumMismatch extends Error {}

/**
 * Upload `body` to `key` in parts (at most partSize × concurrency in memory), every part sent with
 * its SHA-256 for S3 to check, the whole file's SHA-256 recorded as metadata. Resolves with the
 * version written; rejects (and aborts the multipart upload) when the body fails or is refused.
 */
export async function uploadStream(
  store: Store,
  key: string,
  body: Readable,
  sha256: string,
  onProgress: (bytes: number) => void,
): Promise<{ versionId: string | null }> {
  const up = new Upload({
    client: store.s3,
    params: {
      Bucket: store.bucket,
      Key: key,
      Body: body,
      ChecksumAlgorithm: 'SHA256',
      Metadata: { [SHA256_METADATA]: sha256 },
      ...encryption(store.cfg),
    },
    partSize: store.cfg.partSizeMiB * 1024 * 1024,
    queueSize: store.cfg.concurrency,
    leavePartsOnError: false,
  });
  up.on('httpUploadProgress', (p) => onProgress(p.loaded ?? 0));
  const r = await up.done();
  return { versionId: (r as { VersionId?: string }).VersionId ?? null };
}

/** A small object in one PUT (the manifest), with its SHA-256 checked by S3. */
export async function putSmall(store: Store, key: string, body: Buffer): Promise<{ versionId: string | null }> {
  const digest = createHash('sha256').update(body).digest();
  const r = await store.s3.send(
    new PutObjectCommand({
      Bucket: store.bucket,
      Key: key,
      Body: body,
      ChecksumSHA256: digest.toString('base64'),
      Metadata: { [SHA256_METADATA]: digest.toString('hex') },
      ContentType: 'application/json',
      ...encryption(store.cfg),
    }),
  );
  return { versionId: r.VersionId ?? null };
}

/** The object's body as a stream; null when there is no such object. */
export async function getStream(store: Store, key: string): Promise<{ body: Readable; bytes: number } | null> {
  try {
    const r = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
    return { body: r.Body as Readable, bytes: Number(r.ContentLength ?? -1) };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** A small object whole (a manifest, a drill record), at most `max` bytes; null when absent. */
export async function getSmall(store: Store, key: string, max = 4 * 1024 * 1024): Promise<Buffer | null> {
  const got = await getStream(store, key);
  if (!got) return null;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of got.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      got.body.destroy();
      throw new Error(`${store.url(key)} is larger than ${max} bytes: not a manifest`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Every key under `prefix`, every page. */
export async function listKeys(store: Store, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.s3.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Every version and delete marker under `prefix` (the "null" version on a bucket without versioning). */
export async function listVersions(store: Store, prefix: string): Promise<{ key: string; versionId: string | null; latest: boolean }[]> {
  const out: { key: string; versionId: string | null; latest: boolean }[] = [];
  let keyMarker: string | undefined;
  let versionMarker: string | undefined;
  for (;;) {
    const page = await store.s3.send(
      new ListObjectVersionsCommand({ Bucket: store.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
    );
    for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])])
      if (v.Key) out.push({ key: v.Key, versionId: v.VersionId ?? null, latest: v.IsLatest === true });
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    versionMarker = page.NextVersionIdMarker;
  }
  return out;
}

/** Delete exactly these versions, 1000 a call; returns how many went. Errors name the first key S3 refused. */
export async function deleteVersions(store: Store, versions: { key: string; versionId: string | null }[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < versions.length; i += 1000) {
    const batch: ObjectIdentifier[] = versions
      .slice(i, i + 1000)
      .map((v) => ({ Key: v.key, ...(v.versionId && v.versionId !== 'null' ? { VersionId: v.versionId } : {}) }));
    const r = await store.s3.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: batch, Quiet: true } }));
    const failed = r.Errors ?? [];
    if (failed.length) throw new Error(`deleting ${store.url(failed[0].Key ?? '?')}: ${failed[0].Code ?? '?'} ${failed[0].Message ?? ''}`.trim());
    n += batch.length;
  }
  return n;
}

/** Abort every unfinished multipart upload under `prefix` (an interrupted attempt's); returns how many. */
export async function abortUploads(store: Store, prefix: string): Promise<number> {
  let n = 0;
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  for (;;) {
    const page = await store.s3.send(new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
    for (const u of page.Uploads ?? []) {
      if (!u.Key || !u.UploadId) continue;
      await store.s3.send(new AbortMultipartUploadCommand({ Bucket: store.bucket, Key: u.Key, UploadId: u.UploadId }));
      n += 1;
    }
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    idMarker = page.NextUploadIdMarker;
  }
  return n;
}
