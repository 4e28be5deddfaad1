/**
 * Net numbers (the N of 127.N.x.y) for sandboxes that must not meet: claimed with a pid file under
 * <tmp>/switchyard-sandbox-nets, so parallel tests, the demo and benchmarks never pick the same one.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { temporalEndpoints } from './layout';
import { isAlive, readProc, tcpProbe } from './procs';

const NETS_DIR = join(tmpdir(), 'switchyard-sandbox-nets');

function claimFile(net: number): string {
  return join(NETS_DIR, String(net));
}

function tryClaim(net: number): boolean {
  mkdirSync(NETS_DIR, { recursive: true, mode: 0o1777 });
  const file = claimFile(net);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${process.pid} ${readProc(process.pid)?.startTime ?? ''}\n`);
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: [number, string | undefined] = [NaN, undefined];
    try {
      const [p, st] = readFileSync(file, 'utf8').trim().split(' ');
      holder = [Number(p), st || undefined];
    } catch {
      /* gone meanwhile */
    }
    if (isAlive(holder[0], holder[1])) return false;
    rmSync(file, { force: true }); // stale claim of a dead process
  }
  return false;
}

/** Give a net back (only when this process holds the claim). */
export function releaseNet(net: number): void {
  try {
    const [p] = readFileSync(claimFile(net), 'utf8').trim().split(' ');
    if (Number(p) === process.pid) rmSync(claimFile(net), { force: true });
  } catch {
    /* not ours or gone */
  }
}

/**
 * A net that no other process has claimed and on which nothing listens, claimed for this process
 * (released by releaseNet, or found stale once the process is gone): each of `prefer` in order,
 * else one from `from`..254 picked at random so parallel callers rarely race for the same one.
 */
export async function pickNet(opts: { prefer?: number[]; from?: number } = {}): Promise<number> {
  const from = opts.from ?? 20;
  const span = 255 - from;
  const start = Math.floor(Math.random() * span);
  const candidates = [...(opts.prefer ?? []), ...Array.from({ length: span }, (_, i) => from + ((start + i) % span))];
  for (const net of candidates) {
    if (!tryClaim(net)) continue;
    const t = temporalEndpoints(net);
    const probes = [
      tcpProbe(t.host, t.port, 300),
      tcpProbe(t.uiHost, t.uiPort, 300),
      tcpProbe(`127.${net}.1.1`, 5432, 300),
      tcpProbe(`127.${net}.0.1`, 15432, 300),
    ];
    const busy = (await Promise.all(probes)).some(Boolean);
    if (!busy) return net;
    releaseNet(net);
  }
  throw new Error(`no free sandbox net number in ${from}..254`);
}
