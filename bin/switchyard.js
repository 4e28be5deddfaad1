#!/usr/bin/env node
// The switchyard command. TypeScript sources run through tsx: no build step to forget.
'use strict';
require('tsx/cjs/api').register();
require('../src/client/cli').main(process.argv);
