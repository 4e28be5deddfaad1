/**
 * A real Temporal dev server for workflow tests: the Temporal CLI installed by scripts/setup.sh,
 * started by the SDK's TestWorkflowEnvironment (never its own download, which cannot work here).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { loadTools } from '../../src/tools';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/lib/search-attributes';

export { loadTools as toolPaths } from '../../src/tools';

export async function startTestTemporal(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: loadTools().temporal },
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
