#!/usr/bin/env bash
# pip_install_test.sh PYTHON SOURCE_DIR WORK_DIR
#
# What a new user does, offline: a fresh venv, `pip install
# --no-build-isolation SOURCE_DIR`, then, from a directory outside the tree,
# the venv's `leakguard` command, `python -m leakguard`, `import leakguard`
# and `pytest --leakguard` (the pytest11 entry point); then
# `python3 -m build --no-isolation --wheel` and the wheel's contents.
# Exit status 77 (a ctest skip) when PYTHON has no setuptools/wheel.
# The CMake build directory is LEAKGUARD_WHEEL_BUILD_DIR (default
# WORK_DIR/wheel-build, kept between runs so a rerun rebuilds only changes).
set -euo pipefail
python=$1
src=$(cd "$2" && pwd)
work=$3
mkdir -p "$work"
work=$(cd "$work" && pwd)
export LEAKGUARD_WHEEL_BUILD_DIR=${LEAKGUARD_WHEEL_BUILD_DIR:-$work/wheel-build}
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH LD_LIBRARY_PATH LEAKGUARD_COMMAND LEAKGUARD_PYTHON_PROGRAM || true
venv=$work/venv
rm -rf "$venv" "$work/outside" "$work/dist"
mkdir -p "$work/outside"

fail() { echo "pip_install_test: FAILED: $*" >&2; exit 1; }
# expect STATUS COMMAND...: runs COMMAND in $work/outside; its output in $out.
expect() {
  local want=$1 rc=0
  shift
  out=$(cd "$work/outside" && "$@" 2>&1) || rc=$?
  [[ $rc == "$want" ]] || fail "expected status $want, got $rc: $*"$'\n'"$out"
}

# A CPython without setuptools and wheel (one built from source, 3.12+)
# cannot build offline: skipped (status 77), saying why.
if ! "$python" -c 'import setuptools, wheel' 2>/dev/null; then
  echo "pip_install_test: skipped: $python has no setuptools/wheel to build with (no PyPI here)"
  exit 77
fi
"$python" -m venv --system-site-packages "$venv"
if ! "$venv/bin/python" -m pip install --no-build-isolation "$src" >"$work/pip.log" 2>&1; then
  tail -40 "$work/pip.log" >&2
  fail "pip install --no-build-isolation $src"
fi
echo "pip_install_test: installed into $venv"

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
pkg=$site/leakguard
for f in __init__.py __main__.py pytest_plugin.py middleware.py _leakguard.pyi py.typed \
         _paths.py libleakguard.so.0 bin/leakguard; do
  [[ -e $pkg/$f ]] || fail "the wheel lacks leakguard/$f"
done
readelf -d "$pkg"/_leakguard*.so | grep -q 'R.*PATH.*\[\$ORIGIN\]' ||
  fail "the extension's RUNPATH is not \$ORIGIN: $(readelf -d "$pkg"/_leakguard*.so | grep PATH)"
readelf -d "$pkg/bin/leakguard" | grep -q 'R.*PATH.*\[\$ORIGIN/\.\.\]' ||
  fail "the binary's RUNPATH is not \$ORIGIN/..: $(readelf -d "$pkg/bin/leakguard" | grep PATH)"

cat >"$work/outside/leaky.py" <<'PY'
import sys
_kept = []

def leak():
    _kept.append(bytearray(4096))

if __name__ == "__main__":
    import leakguard
    import leakguard.middleware
    print("prefix", sys.prefix)
    print("module", leakguard.__spec__.origin)
    print("middleware", leakguard.middleware.__file__)
    sys.exit(3)
PY
cat >"$work/outside/test_leaky.py" <<'PY'
_kept = []

def test_leaks():
    _kept.append(bytearray(8192))

def test_healthy():
    assert sum(range(10)) == 45
PY

expect 0 "$venv/bin/leakguard" --version
[[ $out =~ ^leakguard\ 0\.1\.0\ \(Python\ 3\. ]] || fail "leakguard --version: $out"
version=$out
expect 0 "$venv/bin/python" -m leakguard --version
[[ $out == "$version" ]] || fail "python -m leakguard --version: '$out' vs '$version'"
expect 0 "$venv/bin/python" -m leakguard --help
[[ $out == *"usage: leakguard run"* ]] || fail "python -m leakguard --help: $out"
expect 1 "$venv/bin/python" -m leakguard doctor leaky.py:leak --repeat 6
[[ $out == *global_state* && $out == *leaky._kept* ]] || fail "python -m leakguard doctor: $out"
expect 1 "$venv/bin/leakguard" doctor leaky.py:leak --repeat 6
expect 2 "$venv/bin/leakguard" doctor leaky.py
# `leakguard run` from the venv's bin/: the script sees the venv, and the
# installed module; the script's status is the command's.
expect 3 "$venv/bin/leakguard" run --top 1 leaky.py
[[ $out == *"prefix $venv"* ]] || fail "leakguard run did not see the venv: $out"
# The command's built-in module, with the installed package's submodules.
[[ $out == *"module built-in"* ]] || fail "leakguard run: not the built-in module: $out"
[[ $out == *"middleware $pkg/middleware.py"* ]] || fail "leakguard run: leakguard.middleware: $out"
expect 0 "$venv/bin/python" -c 'import leakguard, sys; print(leakguard.__file__); print(leakguard.lru_cache(maxsize=4)(abs)(-7))'
[[ $out == "$pkg/__init__.py"$'\n'7 ]] || fail "import leakguard: $out"
if "$venv/bin/python" -c 'import pytest' 2>/dev/null; then
  expect 1 "$venv/bin/python" -m pytest -q -p no:cacheprovider --leakguard test_leaky.py
  [[ $out == *"cause global_state"* && $out == *"held by test_leaky._kept"* ]] ||
    fail "pytest --leakguard (entry point): $out"
  [[ $out == *"1 failed, 1 passed"* ]] || fail "pytest --leakguard outcomes: $out"
fi
echo "pip_install_test: command, python -m leakguard, import and pytest11 work from $work/outside"

if "$python" -c 'import build' 2>/dev/null; then
  if ! (cd "$src" && "$python" -m build --no-isolation --wheel --outdir "$work/dist") \
      >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    fail "python3 -m build --no-isolation --wheel"
  fi
  # The sdist holds every source file the wheel's CMake build reads.
  if ! (cd "$src" && "$python" -m build --no-isolation --sdist --outdir "$work/dist") \
      >>"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    fail "python3 -m build --no-isolation --sdist"
  fi
  "$python" - "$work/dist" "$src" <<'PY' || fail "the sdist's contents"
import glob, os, sys, tarfile
(sdist,) = glob.glob(sys.argv[1] + "/leakguard-0.1.0.tar.gz")
src = sys.argv[2]
with tarfile.open(sdist) as t:
    names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
needed = {"CMakeLists.txt", "pyproject.toml", "setup.py", "LICENSE", "README.md"}
for top in ("cmake", "include", "src", "bindings", "tools", "python/leakguard"):
    for root, dirs, files in os.walk(os.path.join(src, top)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        needed.update(os.path.relpath(os.path.join(root, f), src) for f in files)
missing = sorted(needed - names)
assert not missing, "the sdist lacks %s" % missing
print("pip_install_test: sdist", os.path.basename(sdist), len(names), "files")
PY
  "$python" - "$work/dist" <<'PY' || fail "the wheel's contents"
import glob, sys, zipfile
(wheel,) = glob.glob(sys.argv[1] + "/leakguard-0.1.0-cp3*-linux_*.whl")
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    binary = z.getinfo("leakguard/bin/leakguard")
    entry = z.read("leakguard-0.1.0.dist-info/entry_points.txt").decode()
assert "leakguard/libleakguard.so.0" in names, names
assert any(n.startswith("leakguard/_leakguard.cpython-") for n in names), names
assert (binary.external_attr >> 16) & 0o111, "leakguard/bin/leakguard is not executable"
assert "leakguard = leakguard.__main__:main" in entry and "[pytest11]" in entry, entry
print("pip_install_test: wheel", wheel.rsplit("/", 1)[1], len(names), "files")
PY
fi
echo "pip_install_test: passed"
