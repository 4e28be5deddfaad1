#!/usr/bin/env node
// Builds the workflow bundle into its cache (src/workflow-bundle.ts) unless the cache already has
// this version of the sources: run by the test suite before its phases, and by the Dockerfile at
// image build time (the worker runs as a user that cannot write node_modules).
'use strict';
require('tsx/cjs/api').register();
const { DefaultLogger } = require('@temporalio/worker');
const { bundleCacheDir, bundleKey, workflowBundle } = require('../src/workflow-bundle');

workflowBundle({ logger: new DefaultLogger('WARN') }).then(
  () => process.stdout.write(`workflow bundle ${bundleKey()} in ${bundleCacheDir()}\n`),
  (err) => {
    process.stderr.write(`workflow bundle: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
