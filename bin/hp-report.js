#!/usr/bin/env node
require('../dist/start.cjs').start('hp-report', process.argv.slice(2));
