#!/usr/bin/env node
require('../dist/start.cjs').start('hp-events', process.argv.slice(2));
