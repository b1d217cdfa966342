#!/usr/bin/env bash
# The tree's style checks, as CI runs them (scripts/test.sh calls this):
#   1. clang-format (.clang-format: Google style at 100 columns) over every
#      C and C++ file git tracks: any file it would change fails the check;
#   2. clang-tidy (.clang-tidy's checks, warnings are errors) over src/,
#      with the compile commands of a clang configure in build/tidy.
# Fix formatting with: git ls-files '*.h' '*.cc' '*.c' | xargs clang-format -i
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$LEAKGUARD_ROOT"

echo "== clang-format"
bad=()
while IFS= read -r f; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.h' '*.cc' '*.c')
if ((${#bad[@]})); then
  printf 'clang-format would change: %s\n' "${bad[@]}"
  exit 1
fi

echo "== clang-tidy (src/)"
cmake -S . -B build/tidy -DPython3_EXECUTABLE="$LEAKGUARD_PYTHON" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DLEAKGUARD_BUILD_TESTS=OFF -DLEAKGUARD_BUILD_BENCHMARKS=OFF -DLEAKGUARD_BUILD_TOOLS=OFF \
  -DLEAKGUARD_BUILD_BINDINGS=OFF -DLEAKGUARD_BUILD_EXAMPLES=OFF >build/tidy.configure.log 2>&1 || {
  cat build/tidy.configure.log
  exit 1
}
run-clang-tidy-14 -p build/tidy -quiet -j "$LEAKGUARD_JOBS" 'src/.*\.cc$' >build/tidy.log 2>&1 || {
  grep -E 'error:|warning:' build/tidy.log | head -50
  echo "clang-tidy: see build/tidy.log"
  exit 1
}
echo "style: clang-format and clang-tidy clean"
