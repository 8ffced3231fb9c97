#!/usr/bin/env node
require('../dist/start.cjs').start('hp-collapse', process.argv.slice(2));
