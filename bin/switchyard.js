#!/usr/bin/env node
// The switchyard command. TypeScript sources run through tsx: no build step to forget.
'use strict';
// The AWS SDK warns on every start under Node 20; switchyard states its own engine range.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs/api').register();
require('../src/client/cli').main(process.argv);
