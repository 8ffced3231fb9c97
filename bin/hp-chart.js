#!/usr/bin/env node
require('../dist/start.cjs').start('hp-chart', process.argv.slice(2));
