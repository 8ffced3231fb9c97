#!/usr/bin/env node
require('../dist/start.cjs').start('hp-snapshot', process.argv.slice(2));
