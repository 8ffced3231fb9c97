#!/usr/bin/env bash
# Builds the hook with AddressSanitizer + UndefinedBehaviorSanitizer into a temporary
# directory and runs the end-to-end workloads with it (HEAPPROF_NATIVE_LIB), the ASan
# runtime preloaded into an ordinary CPython. PYTHONMALLOC=malloc lets ASan see Python's
# blocks too. Leak checking is off (CPython keeps memory until exit by design). Any
# sanitizer report fails the run. Usage: native/tools/asan.sh [python...]
set -uo pipefail
named=$#  # interpreters named on the command line: only those
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fixtures=$repo/test/fixtures/native
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -g -std=gnu11 -fPIC -shared -fvisibility=hidden -fno-omit-frame-pointer \
  -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -o "$work/heapprof_hook.so" "$repo"/native/{hook,pyrt,hpxw,tables,attach}.c -lm -lpthread -ldl -lz || exit 1
asan=$(cc -print-file-name=libasan.so)
ubsan=$(cc -print-file-name=libubsan.so)
source "$repo/native/tools/pythons.sh"
status=0
for py in "${pythons[@]}"; do
  for workload in "stacks.py $work/stacks $work/stacks.json" "stress.py $work/stress {}" \
      "rawthreads.py $work/raw" "fork.py $work/fork 1 $work/fork.json" "termpool.py $work/termpool" \
      "hardening.py $work/hard" "pins.py $work/pins $work/pins.json"; do
    set -- $workload
    echo "== $("$py" -c 'import sys; print(sys.version.split()[0])') $1"
    if ! LD_PRELOAD="$asan $ubsan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=99 \
        PYTHONMALLOC=malloc HEAPPROF_NATIVE_LIB="$work/heapprof_hook.so" PYTHONPATH="$repo/python" \
        "$py" "$fixtures/$@" >/dev/null; then
      echo "asan: failure in $1 under $py" >&2
      status=1
    fi
  done
done
# Native recording (interpose.c): the hook preloaded AHEAD of the ASan runtime, so that its
# malloc wraps ASan's (ASan normally insists on coming first: verify_asan_link_order=0).
# Both native modes: the caller only, and --native-stacks (the unwinder inside malloc); also
# a distribution's /usr/bin/python3.x (libpython linked into a non-PIE executable) if there is one.
native_pythons=("${pythons[@]}")
for v in 3.9 3.10 3.11 3.12 3.13; do
  if [ "$named" -eq 0 ] && [ -x "/usr/bin/python$v" ]; then native_pythons+=("/usr/bin/python$v"); fi
done
for py in "${native_pythons[@]}"; do
  for workload in ctypes pure blas mmap mmap_thin; do
    [ "$workload" = blas ] && ! "$py" -c 'import numpy' 2>/dev/null && continue
    for mode in native native_stacks; do
      echo "== $("$py" -c 'import sys; print(sys.version.split()[0])') --${mode/_/-} cext.py $workload"
      if ! LD_PRELOAD="$work/heapprof_hook.so $asan $ubsan" \
          ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=99:verify_asan_link_order=0 \
          HEAPPROF_NATIVE_LIB="$work/heapprof_hook.so" PYTHONPATH="$repo/python" \
          "$py" -c "import heapprof, runpy, sys; heapprof.start('$work/native-$workload', sample_bytes=65536, $mode=True, force=True); sys.argv = ['cext.py', '$workload']; runpy.run_path('$fixtures/cext.py', run_name='__main__'); heapprof.stop()" >/dev/null; then
        echo "asan: failure in --${mode/_/-} $workload under $py" >&2
        status=1
      fi
    done
  done
done
exit $status
