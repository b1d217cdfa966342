#!/usr/bin/env bash
# leakguard in one command: installs what is missing, builds, runs the
# bundled leaky plugin under `leakguard run` (where the memory it kept was
# allocated), then asks `leakguard doctor` why it leaks, which variable holds
# the growth, and how to fix it.
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
build/gcc/tools/leakguard run examples/leaky_plugin.py || true

echo
echo "== leakguard doctor examples/leaky_plugin.py:serve_batch"
echo "   (calls serve_batch() 3 + 20 times and explains the growth)"
set +e
build/gcc/tools/leakguard doctor examples/leaky_plugin.py:serve_batch
rc=$?
set -e
echo
echo "exit status $rc: 1 means the doctor found a leak (0: none, 2: usage or script error)."
[[ $rc -eq 1 ]] || exit $rc

echo
echo "== leakguard doctor examples/leaks/nm_ctypes_malloc.py:step"
echo "   (C memory from malloc through ctypes: named by its line and library, sampled"
echo "    by hooks switched on in the running process, no LD_PRELOAD)"
set +e
build/gcc/tools/leakguard doctor examples/leaks/nm_ctypes_malloc.py:step
rc=$?
set -e
[[ $rc -eq 1 ]] && exit 0 || exit $rc
