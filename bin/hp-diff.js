#!/bin/sh
':' //; unset HEAPPROF_NODE_EXTRA_CA_CERTS; if [ -n "${NODE_EXTRA_CA_CERTS+set}" ]; then HEAPPROF_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export HEAPPROF_NODE_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; fi; exec node --no-concurrent-recompilation "$0" "$@"
// (As a shell script: start Node without NODE_EXTRA_CA_CERTS, which costs Node 20 its root certificate store at start-up; lib/cli.ts puts it back. See doc/internals.md.)
require('../dist/start.js').start('hp-diff', process.argv.slice(2));
