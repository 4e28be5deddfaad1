/**
 * `backup.store`: an S3-compatible bucket that holds an offsite copy of every base backup, so that
 * losing the backup host (or its whole site) loses no backup. Pure data and validation.
 */
import { z } from 'zod';
import { positiveInt, secretRef } from './fields';

/** S3's bucket naming rules (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit). */
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** A key prefix: path segments without "." or ".." and no leading slash. */
const PREFIX_RE = /^(?:[A-Za-z0-9!_.*'()-]+\/)*$/;

export const storeSchema = z
  .object({
    /** The protocol: S3 (AWS, or anything that speaks it: MinIO, Ceph, moto). */
    kind: z.literal('s3', { error: 'expected "s3" (the only store kind)' }).default('s3'),
    bucket: z.string().regex(BUCKET_RE, { error: 'expected an S3 bucket name: 3 to 63 lowercase letters, digits, "." and "-"' }),
    /** Objects are kept under <prefix><cluster>/<backup id>/…; "" or segments ending in "/", e.g. "switchyard/". */
    prefix: z
      .string()
      .regex(PREFIX_RE, { error: 'expected "" or path segments each ending in "/", e.g. "switchyard/" (no leading "/")' })
      .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), { error: 'a prefix may not hold "." or ".." segments' })
      .default(''),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { error: 'expected an AWS region such as "eu-west-1"' }),
    /** Override for the S3 endpoint (MinIO, a VPC endpoint, a local emulator). */
    endpoint: z.url({ error: 'expected an http(s) URL' }).optional(),
    /** Path-style addressing (<endpoint>/<bucket>/<key>); default: on when an endpoint is given. */
    forcePathStyle: z.boolean().optional(),
    /** Default: the SDK's own chain (environment, instance profile). */
    credentials: z.object({ accessKeyId: secretRef, secretAccessKey: secretRef, sessionToken: secretRef.optional() }).strict().optional(),
    /** Server-side encryption of every object: "AES256" (S3-managed keys) or "aws:kms" (with kmsKeyId, or the bucket's default key). */
    serverSideEncryption: z.enum(['AES256', 'aws:kms'], { error: 'expected "AES256" or "aws:kms"' }).optional(),
    kmsKeyId: z.string().min(1).optional(),
    /** Multipart part size: what the worker holds per part in flight (S3's minimum is 5 MiB). */
    partSizeMiB: positiveInt.min(5, { error: 'S3 parts are at least 5 MiB' }).max(5120).default(16),
    /** Parts uploaded at once: the worker holds about partSizeMiB × this per file it uploads. */
    concurrency: positiveInt.max(16).default(4),
  })
  .strict()
  .refine((s) => s.kmsKeyId === undefined || s.serverSideEncryption === 'aws:kms', {
    error: 'kmsKeyId needs serverSideEncryption: "aws:kms"',
    path: ['kmsKeyId'],
  });
export type StoreConfig = z.infer<typeof storeSchema>;
