/**
 * `backup.files`: named file sets backed up with every base backup (a CA directory, a service's
 * keys, configuration that lives outside the database), each on one host of the cluster. Pure
 * data and validation; the activities are in src/activities/backup/file-sets.ts.
 */
import { z } from 'zod';
import { name, secretRef } from './fields';

/**
 * An absolute, normalised path that is not "/" itself: no "." or ".." segments, no "//", no
 * trailing "/", no NUL or newline (the restore's scripts take paths as arguments and the listing
 * separates them by NUL).
 */
export const fileSetPath = z
  .string({ error: 'expected an absolute path' })
  .refine((p) => p.startsWith('/'), { error: 'expected an absolute path (starting with "/")' })
  .refine(
    (p) =>
      p !== '/' &&
      p
        .split('/')
        .slice(1)
        .every((seg) => seg !== '' && seg !== '.' && seg !== '..'),
    {
      error: 'expected a normalised absolute path other than "/": no "." or ".." segments, no "//", no trailing "/"',
    },
  )
  .refine((p) => !/[\0\n]/.test(p), { error: 'a path may not hold a NUL or a newline' });

export const fileSetSchema = z
  .object(
    {
      /** Key into `hosts`: where the files are (and, by default, where a restore puts them back). */
      host: name,
      /** Files and directories (taken with everything under them) that make up the set. */
      paths: z.array(fileSetPath, { error: 'expected a list of absolute paths' }).min(1, { error: 'a file set needs at least one path' }),
      /**
       * `keep-permissions` (default): owners, groups and modes are restored as they were backed up
       * (owners need the SSH user to be root or the files' owner; a restore reports any it could not
       * keep). `contents-only`: bytes only; restored files belong to the SSH user.
       */
      mode: z.enum(['keep-permissions', 'contents-only'], { error: 'expected "keep-permissions" or "contents-only"' }).default('keep-permissions'),
      /** Encrypt the archive in the worker (AES-256-GCM) with `key` before it is written anywhere: for sets holding secrets. */
      encrypt: z.boolean().default(false),
      /** 32 random bytes, as 64 hex digits or base64 (`openssl rand -base64 32`); needed with `encrypt: true`. */
      key: secretRef.optional(),
    },
    { error: 'expected { host, paths, mode?, encrypt?, key? }' },
  )
  .strict()
  .refine((s) => !s.encrypt || s.key !== undefined, { error: 'encrypt: true needs "key": a secret reference to 32 random bytes', path: ['key'] })
  .refine((s) => s.encrypt || s.key === undefined, { error: '"key" is only used with encrypt: true (set it, or leave the key out)', path: ['key'] })
  .superRefine((s, ctx) => {
    s.paths.forEach((p, i) => {
      const j = s.paths.findIndex((o, k) => k !== i && (o === p || p.startsWith(`${o}/`)));
      if (j >= 0)
        ctx.addIssue({
          code: 'custom',
          path: ['paths', i],
          message: s.paths[j] === p ? `${p} is listed twice` : `${p} is under ${s.paths[j]}, which the set already holds`,
        });
    });
  });
export type FileSetConfig = z.infer<typeof fileSetSchema>;

export const fileSetsSchema = z.record(name, fileSetSchema, { error: 'expected named file sets: { <name>: { host, paths, … } }' });
