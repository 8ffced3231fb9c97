#!/usr/bin/env node
require('../dist/start.cjs').start('hp-stats', process.argv.slice(2));
