#!/usr/bin/env node
require('../dist/start.cjs').start('hp-record', process.argv.slice(2));
