#!/usr/bin/env node
require('../dist/start.cjs').start('hp-flow', process.argv.slice(2));
