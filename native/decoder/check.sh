#!/bin/sh
# Build the reference decoder's stress driver (fuzz.c) with AddressSanitizer and
# UndefinedBehaviorSanitizer and run it; then, if valgrind is installed, run a plain build
# under memcheck. Exit status non-zero on any finding. Usage: native/decoder/check.sh [ROUNDS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/hpxdec-check.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
rounds=${1:-20000}
cc=${CC:-cc}
$cc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
  -o "$out/fuzz-asan" "$here/fuzz.c" "$here/hpxdec.c" "$here/kernels.c" -lm
"$out/fuzz-asan" "$rounds"
if command -v valgrind >/dev/null 2>&1; then
  $cc -std=c11 -O1 -g -Wall -Wextra -Werror -o "$out/fuzz" "$here/fuzz.c" "$here/hpxdec.c" "$here/kernels.c" -lm
  valgrind -q --error-exitcode=99 --leak-check=full "$out/fuzz" $((rounds / 10))
fi
