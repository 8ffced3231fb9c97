#!/usr/bin/env node
require('../dist/start.cjs').start('hp-diff', process.argv.slice(2));
