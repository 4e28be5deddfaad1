/**
 * Where the tools scripts/setup.sh installed or found are: .tools/paths.json. One reader for the
 * sandbox, the tests and anything else that starts the Temporal CLI, moto, sshd, HAProxy or
 * PostgreSQL binaries.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface Tools {
  temporal: string;
  motoServer: string;
  sshd: string;
  sshKeygen: string;
  haproxy: string;
  pgBinDir: string;
  /** Debian's Chromium for the console's browser test; null when setup could not install it. */
  chromium: string | null;
}

export const TOOLS_FILE = join(resolve(__dirname, '..'), '.tools', 'paths.json');

export function loadTools(file = TOOLS_FILE): Tools {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): run \`bash scripts/setup.sh\` first`);
  }
  const out: Partial<Tools> = {};
  for (const key of ['temporal', 'motoServer', 'sshd', 'sshKeygen', 'haproxy', 'pgBinDir'] as const) {
    const p = data[key];
    if (typeof p !== 'string' || !existsSync(p)) throw new Error(`${file}: ${key} ${JSON.stringify(p)} does not exist: run \`bash scripts/setup.sh\``);
    out[key] = p;
  }
  out.chromium = typeof data.chromium === 'string' && data.chromium && existsSync(data.chromium) ? data.chromium : null;
  return out as Tools;
}
