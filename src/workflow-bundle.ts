/**
 * The workflow bundle a worker runs, built by webpack (a few seconds of CPU) once per version of
 * the sources and kept on disk, so a restarted worker, `switchyard check` without a worker and
 * every test process start in well under a second instead.
 *
 * The cache key is a hash of everything the bundle can contain: every file under src/ (the
 * workflows and whatever they import) and package-lock.json (the SDK's workflow runtime and any
 * other package a workflow imports). A change to any of them is a new key, so a stale bundle is
 * never run; the cost of being conservative is a rebuild after an activity-only change.
 *
 * Where: $SWITCHYARD_CACHE_DIR, else node_modules/.cache/switchyard. A cache that cannot be read
 * or written (a read-only image) is skipped: the bundle is built in memory, as without a cache.
 * Files are written to a temporary name and renamed, so two processes building at once are safe.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { FAILURE_CONVERTER_PATH } from './temporal-access';
import { bundleWorkflowCode, type Logger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

const REPO = resolve(__dirname, '..');
const WORKFLOWS = require.resolve('./workflows');
/** Every run's metrics (src/workflows/lib/metrics-interceptor.ts). */
const INTERCEPTORS = [require.resolve('./workflows/lib/metrics-interceptor')];

/** How many bundles of other source versions are kept beside the current one. */
const KEEP_OTHERS = 2;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The hash of every input the bundle can depend on (under `root`: the repository). */
export function bundleKey(root = REPO): string {
  const h = createHash('sha256');
  for (const f of [...filesUnder(join(root, 'src')), join(root, 'package-lock.json')]) {
    h.update(relative(root, f));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 24);
}

export function bundleCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.SWITCHYARD_CACHE_DIR || join(REPO, 'node_modules', '.cache', 'switchyard');
}

function readCached(path: string): WorkflowBundleWithSourceMap | null {
  try {
    const b = JSON.parse(readFileSync(path, 'utf8')) as Partial<WorkflowBundleWithSourceMap>;
    return typeof b.code === 'string' && typeof b.sourceMap === 'string' && b.code.length > 0 ? { code: b.code, sourceMap: b.sourceMap } : null;
  } catch {
    return null;
  }
}

function writeCached(dir: string, path: string, bundle: WorkflowBundleWithSourceMap): void {
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(bundle));
  renameSync(tmp, path);
  // Older versions' bundles: the newest few are kept, the rest removed, and so are temporaries
  // a crashed build left (old enough that no build is still writing them).
  const others = readdirSync(dir)
    .filter((f) => f.startsWith('workflows-') && join(dir, f) !== path)
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  const stale = [
    ...others.filter((o) => o.f.endsWith('.json')).slice(KEEP_OTHERS),
    ...others.filter((o) => o.f.endsWith('.tmp') && Date.now() - o.t > 10 * 60_000),
  ];
  for (const { f } of stale) rmSync(join(dir, f), { force: true });
}

/** The bundle for the current sources: from the cache when it has this version, else built (and cached). */
export async function workflowBundle(opts: { logger?: Logger; cacheDir?: string } = {}): Promise<WorkflowBundleWithSourceMap> {
  const dir = opts.cacheDir ?? bundleCacheDir();
  let path: string | null = null;
  try {
    path = join(dir, `workflows-${bundleKey()}.json`);
    const hit = readCached(path);
    if (hit) {
      opts.logger?.debug('workflow bundle from the cache', { path });
      return hit;
    }
  } catch {
    path = null; // the sources or the cache cannot be read: build without it
  }
  const bundle = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS,
    workflowInterceptorModules: INTERCEPTORS,
    failureConverterPath: FAILURE_CONVERTER_PATH,
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  if (path) {
    try {
      writeCached(dir, path, bundle);
    } catch (err) {
      opts.logger?.warn('workflow bundle not cached', { dir, error: (err as Error).message });
    }
  }
  return bundle;
}
