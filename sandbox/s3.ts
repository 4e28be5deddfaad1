/**
 * The sandbox's offsite store: a bucket in moto's S3 (the same moto_server as its EC2), with
 * versioning on, so tests can see that an interrupted upload leaves no second version behind.
 * Made when missing; `up` against a running moto changes nothing.
 */
import { readFileSync } from 'node:fs';
import { EC2_REGION, type Layout } from './layout';
import { ec2Endpoint } from './ec2';

/** The sandbox's backup bucket and key prefix (topology backup.store). */
export const STORE_BUCKET = 'switchyard-backups';
export const STORE_PREFIX = 'offsite/';

/** An S3 client for the sandbox's moto, with the sandbox's credentials (for seeding and for tests that look into the bucket). */
export async function s3Client(l: Layout) {
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client({
    region: EC2_REGION,
    endpoint: ec2Endpoint(l),
    forcePathStyle: true,
    credentials: {
      accessKeyId: readFileSync(l.secrets.awsAccessKeyId, 'utf8').trim(),
      secretAccessKey: readFileSync(l.secrets.awsSecretAccessKey, 'utf8').trim(),
    },
    maxAttempts: 3,
  });
}

/** The bucket, versioned; returns whether it was made now. */
export async function seedS3(l: Layout): Promise<boolean> {
  const sdk = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(l);
  try {
    try {
      await s3.send(new sdk.HeadBucketCommand({ Bucket: STORE_BUCKET }));
      return false;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 404) throw err;
    }
    await s3.send(new sdk.CreateBucketCommand({ Bucket: STORE_BUCKET }));
    await s3.send(new sdk.PutBucketVersioningCommand({ Bucket: STORE_BUCKET, VersioningConfiguration: { Status: 'Enabled' } }));
    return true;
  } finally {
    s3.destroy();
  }
}
