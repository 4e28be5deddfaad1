/**
 * The workflow bundle cache (src/workflow-bundle.ts): a key that changes with any source or the
 * lock file, a cache that is used when it has the key, and never trusted when it is damaged.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bundleKey, workflowBundle } from '../../src/workflow-bundle';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'switchyard-test-bundle-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) {
    chmodSync(d, 0o755);
    rmSync(d, { recursive: true, force: true });
  }
});

describe('workflow bundle cache', () => {
  it('the key changes with any file under src/ and with package-lock.json, and only then', () => {
    const root = tempDir();
    mkdirSync(join(root, 'src/workflows'), { recursive: true });
    writeFileSync(join(root, 'src/workflows/index.ts'), 'export {}\n');
    writeFileSync(join(root, 'src/activities.ts'), 'export const a = 1;\n');
    writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":3}\n');
    const k0 = bundleKey(root);
    assert.match(k0, /^[0-9a-f]{24}$/);
    assert.equal(bundleKey(root), k0, 'the same sources, the same key');
    writeFileSync(join(root, 'src/activities.ts'), 'export const a = 2;\n');
    const k1 = bundleKey(root);
    assert.notEqual(k1, k0, 'a changed file outside src/workflows still changes it');
    writeFileSync(join(root, 'src/workflows/new.ts'), '');
    const k2 = bundleKey(root);
    assert.notEqual(k2, k1, 'an added (even empty) file changes it');
    writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":3,"x":1}\n');
    assert.notEqual(bundleKey(root), k2, 'a new lock file (another SDK) changes it');
  });

  it('the bundle holds no schema library and no topology schema (every cached workflow evaluates its modules on its own)', { timeout: 120_000 }, async () => {
    const { code } = await workflowBundle();
    const modules = [...code.matchAll(/\n\/\*\*\*\/ "([^"\n]+)"\n/g)].map((m) => m[1]);
    assert.ok(
      modules.some((m) => m.includes('src/workflows/')),
      'the module list was read from the bundle',
    );
    assert.deepEqual(
      modules.filter((m) => m.includes('node_modules/zod/') || /src\/topology\/(schema|fields|layout|operators|checkpoints)\.ts$/.test(m)),
      [],
      'zod and the topology schema stay out of the workflows (each cached workflow would build every schema again)',
    );
  });

  it(
    'a cached bundle for the current key is what it returns; a damaged one is rebuilt and replaced; old versions are pruned',
    { timeout: 120_000 },
    async () => {
      const cache = tempDir();
      const path = join(cache, `workflows-${bundleKey()}.json`);
      // Three bundles of other source versions, oldest first, and a crashed build's temporary.
      for (const [i, name] of ['workflows-aaa.json', 'workflows-bbb.json', 'workflows-ccc.json', 'workflows-ddd.json.1.tmp'].entries()) {
        writeFileSync(join(cache, name), '{}');
        const t = new Date(Date.now() - (60 - i) * 60_000);
        utimesSync(join(cache, name), t, t);
      }
      writeFileSync(path, '{"code":"not JSON of a bundle');
      const built = await workflowBundle({ cacheDir: cache });
      assert.match(built.code, /__TEMPORAL__/, 'a real bundle was built in place of the damaged file');
      assert.equal(JSON.parse(readFileSync(path, 'utf8')).code, built.code, 'and cached under the key');
      assert.deepEqual(
        readdirSync(cache).sort(),
        [`workflows-${bundleKey()}.json`, 'workflows-bbb.json', 'workflows-ccc.json'].sort(),
        'the two newest other versions kept; the oldest and the stale temporary removed',
      );

      writeFileSync(path, JSON.stringify({ code: 'the cached code', sourceMap: '{}' }));
      assert.deepEqual(
        await workflowBundle({ cacheDir: cache }),
        { code: 'the cached code', sourceMap: '{}' },
        'a readable entry for the key is used as it is',
      );
    },
  );

  it('a cache directory that cannot be written still gives a bundle, built in memory', { timeout: 120_000 }, async (t) => {
    if (process.getuid?.() === 0) {
      // root writes through any mode: a path under a regular file cannot be created by anyone.
      const file = join(tempDir(), 'a-file');
      writeFileSync(file, '');
      const b = await workflowBundle({ cacheDir: join(file, 'cache') });
      assert.match(b.code, /__TEMPORAL__/);
      assert.equal(existsSync(join(file, 'cache')), false);
      return;
    }
    const cache = tempDir();
    chmodSync(cache, 0o555);
    const b = await workflowBundle({ cacheDir: cache });
    assert.match(b.code, /__TEMPORAL__/);
    assert.deepEqual(readdirSync(cache), []);
    t.diagnostic('read-only cache: built in memory');
  });
});
