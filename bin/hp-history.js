#!/usr/bin/env node
require('../dist/start.cjs').start('hp-history', process.argv.slice(2));
