/**
 * A network partition between the worker and one site, and only the worker: packets from this
 * process's user (the worker's, root) to that site's addresses are dropped by an nftables rule,
 * while the sandbox's own hosts (sshd sessions, PostgreSQL, run as the unprivileged run-as user)
 * still reach it, as the other site's vantage host does across a real inter-site link. One table
 * per sandbox net; removed by heal, by `down` and by the reaper.
 *
 * Needs root (the worker's uid must differ from the hosts' run-as user) and the `nft` command
 * (Debian's nftables, installed by scripts/setup.sh when missing).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import type { Layout } from './layout';

function tableName(l: Layout): string {
  return `switchyard_net${l.net}`;
}

/** Why a partition cannot be made here, or null when it can. */
export function partitionUnsupported(): string | null {
  if ((process.getuid?.() ?? -1) !== 0)
    return "needs root: the partition drops the worker user's packets only, and the sandbox's hosts must run as another user";
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'needs the nft command (Debian: apt-get install nftables)';
  const probe = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  if (probe.status !== 0) return `nft cannot read the ruleset here: ${(probe.stderr || '').trim()}`;
  return null;
}

/** Drop every packet this user sends to the site's hosts' addresses (TCP and the rest), until heal. */
export function cutFromWorker(l: Layout, site: string): string[] {
  const why = partitionUnsupported();
  if (why) throw new Error(`sandbox: cannot cut ${site} off from the worker: ${why}`);
  const addresses = [...new Set(l.hosts.filter((h) => h.site === site).map((h) => h.address))];
  if (!addresses.length) throw new Error(`sandbox: no host at site ${JSON.stringify(site)}`);
  const uid = process.getuid!();
  const t = tableName(l);
  const script =
    `table ip ${t} {\n` +
    `  chain out {\n` +
    `    type filter hook output priority 0; policy accept;\n` +
    `    ip daddr { ${addresses.join(', ')} } meta skuid ${uid} drop\n` +
    `  }\n` +
    `}\n`;
  healSync(l);
  execFileSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  return addresses;
}

/** Remove the sandbox's partition table, when there is one (best effort, synchronous: also for exit handlers). */
export function healSync(l: Layout): void {
  spawnSync('nft', ['delete', 'table', 'ip', tableName(l)], { stdio: 'ignore' });
}
