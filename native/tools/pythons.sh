# Sourced by the native check scripts: sets the array `pythons` to the interpreters named
# on the command line, or else to the newest pyenv CPython of each of 3.9-3.13 found.
pythons=()
if [ $# -gt 0 ]; then
  pythons=("$@")
else
  for v in 3.9 3.10 3.11 3.12 3.13; do
    p=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.*/bin/python$v 2>/dev/null | sort -V | tail -n 1)
    [ -n "$p" ] && pythons+=("$p")
  done
fi
