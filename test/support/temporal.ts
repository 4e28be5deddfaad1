/**
 * A real Temporal dev server for workflow tests: the Temporal CLI installed by scripts/setup.sh,
 * started by the SDK's TestWorkflowEnvironment (never its own download, which cannot work here).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { workflowBundle as cachedBundle } from '../../src/workflow-bundle';
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
/** The workflow bundle the worker runs (src/workflow-bundle.ts: built once per source version), once per test process. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= cachedBundle({ logger: new DefaultLogger('WARN') });
  return bundle;
}
