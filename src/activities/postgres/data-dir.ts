/**
 * Moving a data directory aside instead of deleting it: the name it gets
 * (<dataDir>.switchyard-<UTC stamp>), the move itself under a name not taken yet, and the list of
 * earlier moved-aside copies beside it (kept until a person removes them).
 */
import { mustExec, type OpenSession } from '../ssh/exec';
import { shellScript } from '../ssh/argv';

/** "2026-11-22T08:12:54.193Z" → "20261122T081254Z". */
export function utcStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** Where a data directory is moved aside to: <dataDir>.switchyard-<UTC yyyymmddThhmmssZ>. */
export function moveAsideName(dataDir: string, d: Date): string {
  return `${dataDir.replace(/\/+$/, '')}.switchyard-${utcStamp(d)}`;
}

/** Move a directory aside under a name not taken yet (suffix .2, .3 … within one second); prints the name. */
const MOVE_ASIDE_SH = 'n="$2"; i=1; while [ -e "$n" ]; do i=$((i+1)); n="$2.$i"; done; mv -T -- "$1" "$n" && printf "%s\\n" "$n"';
/** Every <dataDir>.switchyard-<stamp> beside the data directory (not a restore's staging dir .switchyard-restore-*). */
const LIST_ASIDE_SH = 'for p in "$1".switchyard-[0-9]*; do if [ -d "$p" ]; then printf "%s\\n" "$p"; fi; done';

/** Move `dataDir` aside to moveAsideName(dataDir, now) (or that name with a suffix); returns where it went. */
export async function moveDataDirAside(open: OpenSession, dataDir: string, now: Date): Promise<string> {
  const r = await mustExec(open, shellScript(MOVE_ASIDE_SH, dataDir, moveAsideName(dataDir, now)), `moving ${dataDir} aside`);
  return r.stdout.trim();
}

/** Every moved-aside copy of `dataDir` there is (<dataDir>.switchyard-<stamp>*). */
export async function listMovedAside(open: OpenSession, dataDir: string): Promise<string[]> {
  return (await mustExec(open, shellScript(LIST_ASIDE_SH, dataDir), `listing ${dataDir}.switchyard-*`)).stdout.split('\n').filter((l) => l !== '');
}
