/**
 * A real Temporal dev server for workflow tests: the Temporal CLI installed by scripts/setup.sh,
 * started by the SDK's TestWorkflowEnvironment (never its own download, which cannot work here).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/lib/search-attributes';

export interface ToolPaths {
  temporal: string;
  motoServer: string;
  sshd: string;
  sshKeygen: string;
  haproxy: string;
  pgBinDir: string;
}

export function toolPaths(): ToolPaths {
  const file = join(__dirname, '../../.tools/paths.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: run "bash scripts/setup.sh" (npm test does) first`);
  return JSON.parse(readFileSync(file, 'utf8')) as ToolPaths;
}

export async function startTestTemporal(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolPaths().temporal },
      ip: '127.0.0.1',
      searchAttributes: SEARCH_ATTRIBUTES,
      log: { format: 'pretty', level: 'error' },
    },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test process (webpack takes a few seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('WARN') });
  return bundle;
}
