/**
 * The commands of people and their decisions: `approve` / `reject` (signed with an operator's own
 * key when --key is given), `operator add` (a password hash into the topology file, its comments
 * kept) and `operator keygen`, and `console` (the web console).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadTopology } from '../topology/load';
import { PUBLIC_KEY_RE } from '../topology/operators';
import { findConfig, target, UsageError, type GlobalOpts } from './cli-common';
import { hashPassword } from './passwords';
import { decide, decideSigned, withClient, type Signer } from './runs';
import { generateSigningKey, parseSigningKey } from './signing';
import { editTopology } from './topology-edit';

export function registerAccessCommands(program: Command): void {
  for (const decision of ['approve', 'reject'] as const) {
    program
      .command(`${decision} <workflowId> <checkpoint>`)
      .description(`${decision} the checkpoint a run waits at (the update "decide": refused with the reason when not allowed)`)
      .requiredOption('--as <name>', 'who decides (recorded in the step log and history)')
      .option('--comment <text>', 'why')
      .option('--key <file>', "sign the decision with your own Ed25519 key (your operator's publicKey in the topology verifies it)")
      .action(async (workflowId: string, checkpoint: string, o: { as: string; comment?: string; key?: string }, cmd: Command) => {
        const signer = o.key ? operatorSigner(o.key, o.as) : null;
        const d = { checkpoint, decision, by: o.as, ...(o.comment ? { comment: o.comment } : {}) };
        const answer = await withClient(await target(cmd), (client) => (signer ? decideSigned(client, workflowId, d, signer) : decide(client, workflowId, d)));
        if (answer.accepted) {
          const r = answer.result;
          const count =
            r.required !== undefined && r.required > 1 ? ` (${r.approvals} of ${r.required} approvals${r.decided ? '' : ', waiting for more'})` : '';
          process.stdout.write(`accepted: ${decision} at "${checkpoint}" by ${o.as}${signer ? ' (signed)' : ''}${count}\n`);
        } else {
          process.stdout.write(`refused: ${answer.reason}\n`);
          process.exitCode = 1;
        }
      });
  }

  const operator = program.command('operator').description("the people who decide at checkpoints (the topology's `operators`)");
  operator
    .command('add <name>')
    .description('add an operator, or set their password: read from stdin, only its scrypt hash written into the topology (comments kept)')
    .option('--groups <list>', 'comma-separated groups (approvers may name "@<group>")')
    .option('--public-key <hex>', "the operator's Ed25519 public key, for `approve --key` (from `operator keygen`)")
    .action(async (name: string, o: { groups?: string; publicKey?: string }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) throw new UsageError(`operator name "${name}": lowercase letters, digits, "-" or "_"`);
      if (o.publicKey !== undefined && !PUBLIC_KEY_RE.test(o.publicKey)) throw new UsageError('--public-key: expected 64 lowercase hex digits');
      const password = await readPassword(`password for ${name}: `);
      const changes: [string[], unknown][] = [
        [
          ['operators', name, 'password'],
          await hashPassword(password).catch((e: Error) => {
            throw new UsageError(e.message);
          }),
        ],
      ];
      if (o.groups !== undefined)
        changes.push([
          ['operators', name, 'groups'],
          o.groups
            .split(',')
            .map((g) => g.trim())
            .filter(Boolean),
        ]);
      if (o.publicKey !== undefined) changes.push([['operators', name, 'publicKey'], o.publicKey]);
      const existed = loadTopology(configPath).operators[name] !== undefined;
      editTopology(configPath, changes);
      process.stdout.write(`${existed ? 'updated' : 'added'} operator ${name} in ${configPath}\n`);
    });
  operator
    .command('keygen')
    .description('make an Ed25519 key for signing decisions: the private key into --out (mode 0600), the public key printed or written into the topology')
    .requiredOption('--out <file>', 'where the private key goes (never overwritten)')
    .option('--operator <name>', "write the public key as that operator's publicKey")
    .option('--console', "make it the console's key: console.signingKey (a file reference) and console.publicKey")
    .action(async (o: { out: string; operator?: string; console?: boolean }, cmd: Command) => {
      const out = resolve(o.out);
      if (existsSync(out)) throw new UsageError(`--out ${out}: the file exists; a key is never overwritten`);
      const key = generateSigningKey();
      const changes: [string[], unknown][] = [];
      if (o.operator) changes.push([['operators', o.operator, 'publicKey'], key.publicKey]);
      if (o.console) changes.push([['console', 'signingKey'], { file: out }], [['console', 'publicKey'], key.publicKey]);
      writeFileSync(out, key.privatePem, { mode: 0o600, flag: 'wx' });
      if (changes.length) {
        const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
        editTopology(configPath, changes);
        process.stdout.write(`wrote ${out}; public key ${key.publicKey} set in ${configPath}\n`);
      } else process.stdout.write(`wrote ${out}\npublicKey: ${key.publicKey}\n`);
    });
}

export function registerConsoleCommand(program: Command): void {
  program
    .command('console')
    .description('the web console: runs waiting at checkpoints with Approve / Reject, runs, readiness, starting runbooks (and its JSON API)')
    .option('--listen <host:port>', "where to listen (default: the topology's console.listen, else 127.0.0.1:8180)")
    .action(async (o: { listen?: string }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      // The console module (Hono, the page templates) loads only for this command.
      const { startConsole } = require('./console/server') as typeof import('./console/server');
      const c = await startConsole({ configPath, target: await target(cmd), listen: o.listen });
      process.stdout.write(`switchyard console at ${c.url} (topology ${configPath}); Ctrl-C stops it\n`);
      await new Promise<void>((resolve) => {
        const stop = () => void c.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}

/** One line from stdin: typed without echo on a terminal, else the first line piped in. */
async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(c as Buffer);
    const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
    if (!line) throw new UsageError('no password on stdin (pipe it in, or run on a terminal to type it)');
    return line;
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let typed = '';
  try {
    for await (const c of stdin) {
      for (const ch of (c as Buffer).toString('utf8')) {
        if (ch === '\r' || ch === '\n') return typed;
        if (ch === '\u0003') throw new UsageError('cancelled');
        if (ch === '\u007f') typed = typed.slice(0, -1);
        else typed += ch;
      }
    }
    return typed;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/** An operator's key file, read once; its content never reaches a message. */
export function operatorSigner(file: string, name: string): Signer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--key ${file}: cannot read the key file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return { key: parseSigningKey(text, `--key ${file}`), name: `operator:${name.trim().toLowerCase()}` };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
