#!/usr/bin/env bash
# leakguard in one command: installs what is missing, builds, and runs the
# bundled leaky plugin under `leakguard run`, which prints where the memory
# the script kept was allocated.
# Environment: LEAKGUARD_PYTHON (default /usr/bin/python3), LEAKGUARD_JOBS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$LEAKGUARD_ROOT"

scripts/setup
mkdir -p build
echo "== building leakguard (build/gcc)"
lg_build build/gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/gcc.build.log 2>&1 || {
  cat build/gcc.build.log
  exit 1
}

echo "== leakguard run examples/leaky_plugin.py"
echo "   (a plugin that caches every page it renders and never evicts)"
set +e
build/gcc/tools/leakguard run examples/leaky_plugin.py
rc=$?
set -e
echo
echo "The top line is where the kept memory was allocated: the page built at"
echo "examples/leaky_plugin.py:16 and stored in _page_cache, which never evicts."
exit $rc
