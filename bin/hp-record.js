#!/bin/sh
':' //; unset HEAPPROF_NODE_EXTRA_CA_CERTS HEAPPROF_SIGNALS HEAPPROF_FDS; if [ -n "${NODE_EXTRA_CA_CERTS+set}" ]; then HEAPPROF_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export HEAPPROF_NODE_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; fi; while read -r k v; do case $k in SigBlk:) HEAPPROF_SIGNALS="$k$v";; SigIgn:) HEAPPROF_SIGNALS="$HEAPPROF_SIGNALS $k$v"; break;; esac; done 2>/dev/null </proc/$$/status; HEAPPROF_FDS=; for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && ! [ "$f" -ef "$0" ] || continue; while read -r k v; do [ "$k" = flags: ] || continue; [ $(($v & 524288)) -eq 0 ] && HEAPPROF_FDS="$HEAPPROF_FDS$n "; break; done 2>/dev/null <"/proc/$$/fdinfo/$n"; done; export HEAPPROF_SIGNALS HEAPPROF_FDS; exec node "$0" "$@"
// (As a shell script: start Node without NODE_EXTRA_CA_CERTS, which costs Node 20 its root certificate store at start-up; lib/cli.ts puts it back. See doc/internals.md.)
// (And what Node resets at its start and the program must inherit as from python: the signals ignored and blocked, and the descriptors above 2, which Node marks close-on-exec: lib/cmd/record.ts.)
const { main } = require('../dist/cmd/record.js');

main(process.argv.slice(2));
