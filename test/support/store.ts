/**
 * The stage's offsite store as a test looks into it: an S3 client for the sandbox's bucket (moto),
 * with the credentials the topology references.
 */
import { readFileSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import type { Stage } from './stage';

export function storeOf(st: Stage): { s3: S3Client; bucket: string; prefix: string } {
  const c = st.cluster.backup?.store;
  if (!c) throw new Error('the stage has no backup.store');
  const secret = (ref: unknown) => readFileSync((ref as { file: string }).file, 'utf8').trim();
  const s3 = new S3Client({
    region: c.region,
    endpoint: c.endpoint,
    forcePathStyle: true,
    credentials: c.credentials ? { accessKeyId: secret(c.credentials.accessKeyId), secretAccessKey: secret(c.credentials.secretAccessKey) } : undefined,
  });
  return { s3, bucket: c.bucket, prefix: c.prefix };
}
