/**
 * A sandbox for node:test integration tests: a fresh temp dir (named switchyard-test-* so the leak
 * check finds leftovers), a net number no other sandbox uses, and cleanup that happens whatever
 * the test does: `down()` (call it in `after`), process exit, SIGINT/SIGTERM, and a detached
 * reaper that takes the sandbox down if the test process is killed outright.
 *
 *   describe('…', () => {
 *     const sb = useTestSandbox();            // before: start it; after: take it down
 *     it('…', async () => { sb.get().status … });
 *   });
 *
 * or by hand:
 *
 *   let sb: TestSandbox;
 *   before(async () => { sb = await startTestSandbox(); });
 *   after(async () => { await sb?.down(); });
 *
 * (startTestSandbox does not call node:test's `after` itself: called inside a `before` hook, an
 * `after` registers on the hook and runs as soon as the hook ends. Pass `after` to have it
 * registered where you know it is right.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after as testAfter, before as testBefore } from 'node:test';
import { sandboxDown, sandboxKillSync, sandboxUp, type SandboxStatus } from '../../sandbox';
import { pickNet, releaseNet } from '../../sandbox/nets';
import { readProc } from '../../sandbox/procs';
import { loadTopology } from '../../src/topology/load';
import type { Topology } from '../../src/topology/schema';

export interface TestSandbox {
  opts: { dir: string; net: number; cluster: string };
  dir: string;
  net: number;
  cluster: string;
  /** The status `up` returned. */
  status: SandboxStatus;
  /** Path of the generated topology (same as status.config). */
  config: string;
  /** The generated topology, parsed and validated. */
  topology: Topology;
  /** Take it down (idempotent). */
  down(): Promise<void>;
}

export interface TestSandboxOptions {
  cluster?: string;
  /** Progress lines of `up`/`down` (default: silent; SWITCHYARD_TEST_VERBOSE=1 prints them to stderr). */
  log?: (line: string) => void;
  /** Register cleanup with this (node:test's `after` at top level, or a test's `t.after`). */
  after?: (fn: () => Promise<void>) => void;
}

const REPO = resolve(__dirname, '../..');
const live = new Map<string, { net: number; down: () => Promise<void> }>();
/** Every sandbox dir this process made, taken down or not. */
const made = new Set<string>();

// ---------------------------------------------------------------------------------------------
// Cleanup whatever happens

let handlersInstalled = false;
function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const [dir, { net }] of live) {
      try {
        sandboxKillSync({ dir });
      } catch {
        /* best effort at exit */
      }
      releaseNet(net);
    }
    live.clear();
    // A sandbox taken down and then made again (a call into it that outlived its test) is this
    // process's too: say so, and take it away.
    for (const dir of made) {
      if (!existsSync(dir) && !existsSync(`${dir}.lock`)) continue;
      process.stderr.write(`test sandbox ${dir} exists again after its down (something used it after its test): removing it\n`);
      try {
        sandboxKillSync({ dir });
      } catch {
        /* best effort at exit */
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: taking ${live.size} test sandbox(es) down\n`);
      void Promise.allSettled([...live.values()].map((s) => s.down())).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

function startReaper(dir: string): void {
  const me = readProc(process.pid);
  if (!me) return;
  const child = spawn(process.execPath, [join(REPO, 'sandbox', 'reaper.cjs'), String(process.pid), me.startTime, dir], {
    cwd: REPO,
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' },
  });
  child.on('error', () => undefined);
  child.unref();
}

// ---------------------------------------------------------------------------------------------

export async function startTestSandbox(options: TestSandboxOptions = {}): Promise<TestSandbox> {
  const log = options.log ?? (process.env.SWITCHYARD_TEST_VERBOSE ? (l: string) => process.stderr.write(`[sandbox] ${l}\n`) : () => undefined);
  installProcessHandlers();
  const net = await pickNet({ from: 20 });
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-sandbox-'));
  made.add(dir);
  const opts = { dir, net, cluster: options.cluster ?? 'demo' };
  let downing: Promise<void> | null = null;
  const down = (): Promise<void> => {
    downing ??= (async () => {
      try {
        await sandboxDown(opts, log);
      } catch (err) {
        sandboxKillSync(opts); // never leave it behind, even when down complains
        throw err;
      } finally {
        live.delete(dir);
        releaseNet(net);
      }
    })();
    return downing;
  };
  live.set(dir, { net, down });
  options.after?.(down);
  startReaper(dir);
  let status: SandboxStatus;
  try {
    status = await sandboxUp(opts, log);
  } catch (err) {
    await down().catch(() => undefined);
    throw err;
  }
  return { opts, dir, net, cluster: opts.cluster, status, config: status.config, topology: loadTopology(status.config), down };
}

/**
 * Start a sandbox before the tests of the enclosing describe (or file) and take it down after
 * them. Call it synchronously in a describe body or at the top level of a test file.
 */
export function useTestSandbox(options: Omit<TestSandboxOptions, 'after'> = {}): { get(): TestSandbox } {
  let sb: TestSandbox | undefined;
  testBefore(async () => {
    sb = await startTestSandbox(options);
  });
  testAfter(async () => {
    await sb?.down();
  });
  return {
    get(): TestSandbox {
      if (!sb) throw new Error('useTestSandbox: the sandbox is not up (did its before hook fail?)');
      return sb;
    },
  };
}
