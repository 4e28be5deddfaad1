/**
 * Operators' console passwords: scrypt (node:crypto) with a random 16-byte salt, stored as
 * `scrypt$N$r$p$salt$hash` (topology/operators.ts). Checking takes as long for an unknown name as
 * for a known one, and compares in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { PASSWORD_HASH_RE } from '../topology/operators';

const COST = { N: 32768, r: 8, p: 1 };
const KEY_LENGTH = 32;

function derive(password: string, salt: Buffer, o: { N: number; r: number; p: number }, length: number): Promise<Buffer> {
  const options: ScryptOptions = { ...o, maxmem: 256 * o.N * o.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, length, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  if (password.length < 12) throw new Error('a console password needs at least 12 characters');
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST, KEY_LENGTH);
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** A hash no password matches, checked for names that have none (so timing tells nothing). */
let decoy: Promise<string> | undefined;

/** Does `password` match `stored`? A missing or malformed hash never matches. */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const m = stored ? PASSWORD_HASH_RE.exec(stored) : null;
  if (!m) {
    decoy ??= hashPassword(randomBytes(18).toString('base64'));
    const d = PASSWORD_HASH_RE.exec(await decoy)!;
    await derive(password, Buffer.from(d[4], 'base64'), COST, KEY_LENGTH);
    return false;
  }
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const want = Buffer.from(m[5], 'base64');
  if (N < 1024 || N > 1 << 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16 || want.length < 16) return false;
  const got = await derive(password, Buffer.from(m[4], 'base64'), { N, r, p }, want.length);
  return timingSafeEqual(got, want);
}
