/**
 * The sandbox console's people and key: operators alice, bob (group dba) and carol (group oncall)
 * with random passwords (kept with their scrypt hashes in <dir>/secrets/operators.json, 0600, made
 * once so the topology does not change on every `up`), an Ed25519 key of each for `approve --key`
 * (<dir>/secrets/operator-<name>.key, its public half in the topology), and the console's signing
 * key in <dir>/secrets/console.key. A demo or a test signs in with sandboxPassword().
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hashPassword } from '../src/client/passwords';
import { generateSigningKey, parseSigningKey, publicKeyHex } from '../src/client/signing';
import type { Layout } from './layout';
import type { SandboxAccess } from './topology';

export const SANDBOX_OPERATORS: Record<string, string[]> = { alice: ['dba'], bob: ['dba'], carol: ['oncall'] };

type Stored = Record<string, { password: string; hash: string }>;

export async function sandboxAccess(l: Layout): Promise<SandboxAccess> {
  let stored: Stored = existsSync(l.secrets.operators) ? (JSON.parse(readFileSync(l.secrets.operators, 'utf8')) as Stored) : {};
  if (Object.keys(SANDBOX_OPERATORS).some((n) => !stored[n])) {
    stored = {};
    for (const n of Object.keys(SANDBOX_OPERATORS)) {
      const password = randomBytes(15).toString('base64url');
      stored[n] = { password, hash: await hashPassword(password) };
    }
    writeFileSync(l.secrets.operators, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600 });
  }
  const publicOf = (file: string) => {
    if (!existsSync(file)) writeFileSync(file, generateSigningKey().privatePem, { mode: 0o600 });
    return publicKeyHex(parseSigningKey(readFileSync(file, 'utf8'), file));
  };
  return {
    operators: Object.fromEntries(
      Object.entries(SANDBOX_OPERATORS).map(([n, groups]) => [
        n,
        { hash: stored[n].hash, groups, publicKey: publicOf(sandboxOperatorKey(l.secrets.operators, n)) },
      ]),
    ),
    consolePublicKey: publicOf(l.secrets.consoleKey),
  };
}

/** An operator's console password, from the sandbox's operators file (`sandbox status`: console.operators). */
export function sandboxPassword(operatorsFile: string, name: string): string {
  const stored = JSON.parse(readFileSync(operatorsFile, 'utf8')) as Stored;
  if (!stored[name]) throw new Error(`the sandbox has no operator "${name}" (operators: ${Object.keys(stored).join(', ')})`);
  return stored[name].password;
}

/** An operator's own signing key file (for `switchyard approve --key`, and signed starts). */
export function sandboxOperatorKey(operatorsFile: string, name: string): string {
  return join(dirname(operatorsFile), `operator-${name}.key`);
}
