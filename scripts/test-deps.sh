#!/usr/bin/env bash
# Installs the system tools some tests use (Graphviz `dot` for hp-flow, Chromium for the
# hp-report browser test) when they are missing. Runs before `npm test`, but only changes
# the system in CI (CI=true) or when asked (HP_INSTALL_TEST_DEPS=1), and only as root with
# apt-get; elsewhere the tests that need these tools skip with a printed reason.
set -u
want=()
command -v dot >/dev/null 2>&1 || want+=(graphviz)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "${CI:-}" != "true" ] && [ "${HP_INSTALL_TEST_DEPS:-}" != "1" ]; then
  echo "test-deps: ${want[*]} not installed; tests that need them will be skipped (HP_INSTALL_TEST_DEPS=1 installs them)" >&2
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: cannot install ${want[*]} (needs root and apt-get); those tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}"; } >/tmp/heapprof-test-deps.log 2>&1; then
  echo "test-deps: installing ${want[*]} failed (see /tmp/heapprof-test-deps.log); those tests will be skipped" >&2
fi
exit 0
