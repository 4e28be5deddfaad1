/**
 * The sandbox console's people and key: operators alice, bob (group dba) and carol (group oncall)
 * with random passwords (kept with their scrypt hashes in <dir>/secrets/operators.json, 0600, made
 * once so the topology does not change on every `up`), and the console's Ed25519 signing key in
 * <dir>/secrets/console.key. A demo or a test signs in with sandboxPassword().
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
  if (!existsSync(l.secrets.consoleKey)) writeFileSync(l.secrets.consoleKey, generateSigningKey().privatePem, { mode: 0o600 });
  const consolePublicKey = publicKeyHex(parseSigningKey(readFileSync(l.secrets.consoleKey, 'utf8'), l.secrets.consoleKey));
  return {
    operators: Object.fromEntries(Object.entries(SANDBOX_OPERATORS).map(([n, groups]) => [n, { hash: stored[n].hash, groups }])),
    consolePublicKey,
  };
}

/** An operator's console password, from the sandbox's operators file (`sandbox status`: console.operators). */
export function sandboxPassword(operatorsFile: string, name: string): string {
  const stored = JSON.parse(readFileSync(operatorsFile, 'utf8')) as Stored;
  if (!stored[name]) throw new Error(`the sandbox has no operator "${name}" (operators: ${Object.keys(stored).join(', ')})`);
  return stored[name].password;
}
