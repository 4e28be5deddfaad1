/**
 * `switchyard backup list <cluster>`: runs the read-only backupList workflow (the CLI reaches no
 * host itself) and prints one line per backup, with its base backup, snapshots and file sets.
 */
import type { TemporalTarget } from '../temporal-target';
import type { BackupListResult } from '../workflows/backup-list';
import { formatBytes } from '../contract/format';
import { rootMessage } from './readiness-report';
import { runId, startRunbook, withClient } from './runs';

export async function runBackupList(t: TemporalTarget, cluster: string, requestedBy: string, workflowId?: string): Promise<BackupListResult> {
  return withClient(t, async (client) => {
    const id = await startRunbook(client, t.namespace, 'backupList', { cluster, requestedBy }, { workflowId: workflowId ?? runId('backup-list', cluster) });
    try {
      return await client.workflow.getHandle(id).result();
    } catch (err) {
      throw new Error(`listing the backups of ${cluster} (${id}) failed: ${rootMessage(err)}`);
    }
  });
}

const where = (l: readonly string[]) => (l.length === 2 ? 'host+store' : (l[0] ?? '-'));

export function formatBackupList(r: BackupListResult): string {
  if (!r.backups.length) return `cluster ${r.cluster} has no backups (make one: switchyard backup ${r.cluster} --wait)\n`;
  const rows = r.backups.map((b) => [
    b.backupId,
    b.at ?? '-',
    b.pg ? `${b.pg.complete ? formatBytes(b.pg.totalBytes) : 'INCOMPLETE'} ${where(b.pg.location)}${b.pg.provenAt ? ' proven' : ''}` : '-',
    b.ebs ? `${b.ebs.snapshots} snapshot${b.ebs.snapshots === 1 ? '' : 's'}` : '-',
    b.files.length
      ? b.files
          .map((f) => `${f.set} (${f.host}, ${f.files} files, ${formatBytes(f.totalBytes)}${f.encrypted ? ', encrypted' : ''}, ${where(f.location)})`)
          .join('; ')
      : '-',
  ]);
  const head = ['BACKUP', 'MADE', 'BASE BACKUP', 'EBS', 'FILE SETS'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(width[i])))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}
