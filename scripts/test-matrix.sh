#!/usr/bin/env bash
# The whole test suite against every CPython leakguard claims:
#   3.9    built by scripts/pythons.sh from Debian bullseye's source package
#   3.11   Debian's /usr/bin/python3
#   3.13   built by scripts/pythons.sh from Debian trixie's source package
#   3.13t  the same, free-threaded (--disable-gil)
# Prints one line per interpreter, e.g. "3.13t: 212 passed, 0 failed", and
# exits non-zero if any failed. The CPythons are built once into a cache
# (~/.cache/leakguard/pythons) and reused by later runs.
#
#   scripts/test-matrix.sh              all four
#   scripts/test-matrix.sh 3.11 3.13t   just these
#
# Only Debian's 3.11 sees Debian's python3-* packages. For the others the
# pure-Python peers the tests compare with (objgraph, cachetools) are put on
# PYTHONPATH from Debian's dist-packages; tests that need compiled ones
# (numpy, psutil) skip there and say why.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$LEAKGUARD_ROOT"

flavours=("$@")
((${#flavours[@]})) || flavours=(3.9 3.11 3.13 3.13t)

scripts/setup
built=()
for f in "${flavours[@]}"; do [[ $f == 3.11 ]] || built+=("$f"); done
((${#built[@]} == 0)) || scripts/pythons.sh "${built[@]}"

# Pure-Python peers from Debian's dist-packages, for the other versions.
pure=$LEAKGUARD_ROOT/build/matrix-pure-site
rm -rf "$pure"
mkdir -p "$pure"
for mod in objgraph.py cachetools; do
  [[ -e /usr/lib/python3/dist-packages/$mod ]] && ln -s "/usr/lib/python3/dist-packages/$mod" "$pure/$mod"
done

declare -A lines
rc=0
for f in "${flavours[@]}"; do
  if [[ $f == 3.11 ]]; then
    python=/usr/bin/python3
    pythonpath=${PYTHONPATH:-}
    dir=build/gcc  # The same build scripts/test.sh makes: reused, not redone.
  else
    python=$(scripts/pythons.sh --print-python "$f")
    pythonpath=$pure
    dir=build/matrix-$f
  fi
  rm -rf "$dir/test-results"
  echo "== $f ($python)"
  mkdir -p build
  # The benchmarks are built and smoke-run once, by scripts/test.sh.
  bench=()
  [[ $f == 3.11 ]] || bench=(-DLEAKGUARD_BUILD_BENCHMARKS=OFF)
  if ! LEAKGUARD_PYTHON=$python lg_build_std "$dir" "${bench[@]}" >"$dir.build.log" 2>&1; then
    tail -40 "$dir.build.log"
    lines[$f]="build FAILED (see $dir.build.log)"
    rc=1
    continue
  fi
  if ! (cd "$dir" && PYTHONPATH=$pythonpath ctest --output-on-failure -j "$LEAKGUARD_JOBS" \
      >"../../$dir.ctest.log" 2>&1); then
    rc=1
    grep -E "Failed|\*\*\*" "$dir.ctest.log" | head -20 || true
    LEAKGUARD_PYTHON=/usr/bin/python3 lg_failures "$dir" | head -80 || true
  fi
  lines[$f]=$(LEAKGUARD_PYTHON=/usr/bin/python3 lg_count "$dir")
  tail -3 "$dir.ctest.log" | head -1
done

echo
echo "== matrix"
for f in "${flavours[@]}"; do echo "$f: ${lines[$f]}"; done
exit $rc
