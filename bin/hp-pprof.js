#!/usr/bin/env node
require('../dist/start.cjs').start('hp-pprof', process.argv.slice(2));
