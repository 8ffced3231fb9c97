#!/usr/bin/env bash
# Runs the recorder's end-to-end workloads under valgrind memcheck on every pyenv CPython
# 3.9-3.13 (or the interpreters given as arguments), with PYTHONMALLOC=malloc so that
# memcheck sees every block. Any memcheck error fails the run. Slow (minutes): not part of
# `npm test`; run it after changing native/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fixtures=$repo/test/fixtures/native
source "$repo/native/tools/pythons.sh"
[ -f "$repo/build/Release/heapprof_hook.so" ] || { echo "memcheck: build the hook first (npx node-gyp rebuild)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for py in "${pythons[@]}"; do
  for workload in "stacks.py $out/stacks $out/stacks.json" "stress.py $out/stress {}" "fork.py $out/fork 1 $out/fork.json"; do
    set -- $workload
    echo "== $("$py" -c 'import sys; print(sys.version.split()[0])') $1"
    if ! PYTHONMALLOC=malloc PYTHONPATH=$repo/python valgrind -q --error-exitcode=99 --leak-check=no \
        --trace-children=no "$py" "$fixtures/$@" >/dev/null; then
      echo "memcheck: errors in $1 under $py" >&2
      status=1
    fi
  done
done
exit $status
