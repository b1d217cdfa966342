# Shared by scripts/demo.sh, scripts/test.sh and scripts/test-matrix.sh.
# Source it; it defines paths and the configure/build helpers.

LEAKGUARD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The CPython to build against: Debian's by default.
LEAKGUARD_PYTHON=${LEAKGUARD_PYTHON:-/usr/bin/python3}
LEAKGUARD_JOBS=${LEAKGUARD_JOBS:-$(nproc)}

# lg_build DIR [CMAKE ARGS...]: configure (once) and build DIR.
lg_build() {
  local dir=$1
  shift
  cmake -S "$LEAKGUARD_ROOT" -B "$dir" -DPython3_EXECUTABLE="$LEAKGUARD_PYTHON" \
    -DLEAKGUARD_WERROR=ON "$@" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log"
    return 1
  }
  cmake --build "$dir" -j "$LEAKGUARD_JOBS"
}

# lg_build_std DIR [CMAKE ARGS...]: the standard build (g++, RelWithDebInfo, everything on)
# that scripts/test.sh tests and scripts/test-matrix.sh repeats per CPython.
lg_build_std() {
  local dir=$1
  shift
  lg_build "$dir" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
}

# lg_count DIR...: sums the GoogleTest XML results of the build dirs given
# and prints "N passed, N failed".
lg_count() {
  "$LEAKGUARD_PYTHON" - "$@" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for d in sys.argv[1:]:
    for f in glob.glob(f"{d}/test-results/*.xml"):
        root = ET.parse(f).getroot()
        t = int(root.get("tests", 0)); fl = int(root.get("failures", 0)) + int(root.get("errors", 0))
        s = int(root.get("skipped", 0)) + int(root.get("disabled", 0))
        passed += t - fl - s; failed += fl; skipped += s
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
}

# lg_failures DIR...: for every failed GoogleTest case in the XML results of
# the build dirs given, prints "suite.case" and the first lines of each of its
# failure messages, so that a red run says which assertion failed and with
# what values, not only which binary.
lg_failures() {
  "$LEAKGUARD_PYTHON" - "$@" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
for d in sys.argv[1:]:
    for f in sorted(glob.glob(f"{d}/test-results/*.xml")):
        for case in ET.parse(f).getroot().iter("testcase"):
            problems = case.findall("failure") + case.findall("error")
            if not problems:
                continue
            print(f"FAILED {case.get('classname')}.{case.get('name')} ({f})")
            for p in problems[:5]:
                text = (p.get("message") or p.text or "").strip().splitlines()
                for line in text[:12]:
                    print(f"    {line}")
PY
}
