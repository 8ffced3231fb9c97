#!/usr/bin/env bash
# Prints the struct offsets native/pyrt.c relies on, for every pyenv CPython 3.9-3.13,
# by compiling native/tools/offsets_probe.c against each version's own headers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
for v in 3.9 3.10 3.11 3.12 3.13; do
  prefix=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.* 2>/dev/null | sort -V | tail -n 1) || true
  [ -n "$prefix" ] || { echo "# no CPython $v"; continue; }
  cc -I"$prefix/include/python$v" -I"$prefix/include/python$v/internal" -o "$out/probe$v" "$here/offsets_probe.c"
  "$out/probe$v"
done
rm -rf "$out"
