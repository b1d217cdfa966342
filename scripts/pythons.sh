#!/usr/bin/env bash
# pythons.sh — build the CPython interpreters leakguard is tested against, once,
# into a cache outside the source tree.
#
#   scripts/pythons.sh [FLAVOUR...]        build the named flavours (default:
#                                           the four CPythons, not absl-tsan)
#   scripts/pythons.sh --print-prefix FLAV  print FLAV's install prefix
#   scripts/pythons.sh --print-python FLAV  print FLAV's interpreter path
#
# Flavours (each is its own prefix under $LEAKGUARD_PYTHONS, default
# ~/.cache/leakguard/pythons):
#   3.9        CPython 3.9 from Debian bullseye's python3.9 source package
#   3.13       CPython 3.13 from Debian trixie's python3.13 source package
#   3.13t      same source, free-threaded (--disable-gil), bin/python3.13t
#   3.13-tsan  same source, clang + --with-thread-sanitizer (for the TSan build
#              of the C++ test suite)
# All are --enable-shared with an rpath to $prefix/lib, so bin/python3.X runs
# without LD_LIBRARY_PATH. No PGO/LTO, no ensurepip.
#
# One non-Python flavour, built ONLY when named explicitly (the default list
# and `3.13-tsan` alone do not pull it in, so existing callers are unaffected):
#   absl-tsan  Abseil from Debian bookworm's own abseil source package, pinned
#              to the source version of the installed libabsl-dev
#              (20220623.1-1+deb12u2 here), WITH Debian's patches, built by
#              clang with -fsanitize=thread as shared libraries (C++17, like
#              debian/rules), installed with an rpath to $prefix/lib. Debian's
#              libabsl is not TSan-instrumented, so absl::Mutex is invisible to
#              TSan and every field it guards is reported as a race; link the
#              TSan test suite against this one instead, e.g. with
#              -DCMAKE_PREFIX_PATH="$(scripts/pythons.sh --print-prefix absl-tsan)"
#              (find_package(absl) then finds $prefix/lib/cmake/absl before
#              /usr). Its headers must be Debian's: the build fails unless the
#              installed include/absl/base/options.h (std:: aliasing off,
#              inline namespace debian3, hardened) is byte-identical to
#              /usr/include/absl/base/options.h, and unless the whole include
#              tree matches /usr/include/absl. Needs cmake, clang, libabsl-dev.
#              RelWithDebInfo (-O2 -g -DNDEBUG; Debian builds without NDEBUG,
#              which changes no layout). No --print-python.
#              Abseil 20220623 under TSan still reports one false positive of
#              its own (google/sanitizers#953: Waiter::Post vs. the mmap that
#              created another thread's ThreadIdentity, on first contention);
#              $prefix/share/leakguard/absl-tsan.supp has the one-line
#              suppression, to be merged into the TSAN_OPTIONS suppressions.
#
# Sources come only from Debian's archive via `apt-get source`, using an apt
# configuration private to the cache ($cache/apt/SUITE: its own sources.list
# with a deb-src line signed-by the debian-archive-keyring, own lists/state/
# cache dirs) on the same mirror host as /etc/apt; /etc/apt is never edited.
# apt checks the suite's signed InRelease and the file hashes; dpkg-source then
# checks the .dsc checksums (its warning that it cannot verify the uploader's
# signature on the .dsc is expected: debian-keyring is not installed, and the
# archive signature chain above already authenticates the files). We extract
# with `dpkg-source --skip-debianization`, i.e. the pristine upstream orig
# tarball (3.9.2 / 3.13.5) WITHOUT Debian's patches: those
# patches adapt CPython to Debian's packaging (dist-packages instead of
# site-packages, multiarch/deb install layouts, Debian-specific paths), which
# is wrong for a self-contained prefix. abseil (suite bookworm) is the
# exception: it is extracted normally, with Debian's patches, because those
# patches define the ABI (options.h, SONAME) the installed libabsl-dev has.
#
# A flavour is done when $prefix/.leakguard-complete exists (written last,
# after an import check of ssl/ctypes/zlib/bz2/lzma/sqlite3; for absl-tsan
# after the header comparison, a find_package(absl) check and a TSan run of an
# absl::Mutex-guarded counter that must report no race); later runs reuse
# it. Delete the prefix (or that file) to force a rebuild. Build logs are in
# $cache/logs/FLAVOUR.log; build dirs ($cache/build/FLAVOUR) are removed after
# success. Heavy steps run under `nice -n 15` with make -j2
# (override with LEAKGUARD_JOBS).
set -euo pipefail

CACHE=${LEAKGUARD_PYTHONS:-$HOME/.cache/leakguard/pythons}
JOBS=${LEAKGUARD_JOBS:-2}
ALL_FLAVOURS=(3.9 3.13 3.13t 3.13-tsan)      # the default: CPythons only
KNOWN_FLAVOURS=("${ALL_FLAVOURS[@]}" absl-tsan)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
STAMP=.leakguard-complete

die() { echo "pythons.sh: error: $*" >&2; exit 1; }
log() { echo "pythons.sh: $*"; }

check_flavour() {
  case $1 in 3.9|3.13|3.13t|3.13-tsan|absl-tsan) ;; *) die "unknown flavour '$1' (known: ${KNOWN_FLAVOURS[*]})";; esac
}
prefix_of() { echo "$CACHE/$1"; }
python_of() {
  case $1 in
    3.9) echo "$CACHE/$1/bin/python3.9" ;;
    3.13t) echo "$CACHE/$1/bin/python3.13t" ;;
    absl-tsan) die "absl-tsan is a library, not a Python (use --print-prefix)" ;;
    *) echo "$CACHE/$1/bin/python3.13" ;;
  esac
}
suite_of() { case $1 in 3.9) echo bullseye ;; absl-tsan) echo bookworm ;; *) echo trixie ;; esac; }
srcpkg_of() { case $1 in 3.9) echo python3.9 ;; absl-tsan) echo abseil ;; *) echo python3.13 ;; esac; }

# ---------------------------------------------------------------- arguments
flavours=()
while (($#)); do
  case $1 in
    --print-prefix|--print-python)
      (($# == 2)) || die "usage: $0 $1 FLAVOUR"
      check_flavour "$2"
      if [[ $1 == --print-prefix ]]; then prefix_of "$2"; else python_of "$2"; fi
      exit 0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (try --help)" ;;
    *) check_flavour "$1"; flavours+=("$1") ;;
  esac
  shift
done
((${#flavours[@]})) || flavours=("${ALL_FLAVOURS[@]}")

mkdir -p "$CACHE/logs"
exec 9>"$CACHE/.lock"
flock -n 9 || die "another pythons.sh is running on $CACHE"

# ------------------------------------------------------- host build deps
# Installed from the machine's own (bookworm) apt sources, only when missing.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing packages (install them as root): ${missing[*]}"
  log "installing missing packages: ${missing[*]}"
  apt-get update -q || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
}

need_build=()
for f in "${flavours[@]}"; do
  [[ -f $(prefix_of "$f")/$STAMP ]] || need_build+=("$f")
done
if ((${#need_build[@]})); then
  pkgs=(dpkg-dev debian-archive-keyring build-essential xz-utils)
  if [[ " ${need_build[*]} " != " absl-tsan " ]]; then   # some CPython to build
    pkgs+=(pkg-config libssl-dev zlib1g-dev libbz2-dev libffi-dev liblzma-dev
           libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev)
  fi
  [[ " ${need_build[*]} " == *" 3.13-tsan "* ]] && pkgs+=(clang)
  # libabsl-dev: absl-tsan is pinned to its version and checked against its headers
  [[ " ${need_build[*]} " == *" absl-tsan "* ]] && pkgs+=(clang cmake libabsl-dev)
  ensure_packages "${pkgs[@]}"
fi

# ------------------------------------------------------------- sources
mirror_uri() {
  # The Debian (non-security) archive URI this machine's apt already uses.
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed 's/#.*//' | grep -oE 'https?://[^][ ]+' | grep -v -- '-security' \
        | grep -E '/debian/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# fetch_source SUITE PKG [VERSION [debian]] -> prints the unpacked source dir
# VERSION pins the source version (apt-get source PKG=VERSION; "" = newest in
# SUITE). "debian" extracts with Debian's patches applied instead of the
# pristine upstream tarball.
fetch_source() {
  local suite=$1 pkg=$2 version=${3:-} mode=${4:-pristine}
  local aptdir=$CACHE/apt/$suite srcroot=$CACHE/src/$suite
  local srcdir=$srcroot/$pkg want="${version:-any} $mode"
  if [[ -f $srcroot/.$pkg-unpacked ]]; then
    # the stamp holds "VERSION MODE" ("any pristine" when empty: older stamps)
    local have; have=$(cat "$srcroot/.$pkg-unpacked"); have=${have:-any pristine}
    if [[ ${have#* } == "$mode" && ( $version == "" || ${have%% *} == "$version" ) ]]; then
      echo "$srcdir"; return 0
    fi
    log "$pkg: cached source is '$have', want '$want'; fetching again" >&2
  fi
  [[ -r $KEYRING ]] || die "$KEYRING missing (package debian-archive-keyring)"
  mkdir -p "$aptdir/sources.list.d" "$aptdir/state/lists/partial" \
           "$aptdir/cache/archives/partial" "$srcroot"
  echo "deb-src [signed-by=$KEYRING] $(mirror_uri) $suite main" >"$aptdir/sources.list"
  local apt=(apt-get -q
    -o "Dir::Etc::SourceList=$aptdir/sources.list"
    -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
    -o "Dir::State=$aptdir/state"
    -o "Dir::Cache=$aptdir/cache"
    # the cache usually sits under $HOME, which apt's '_apt' download user
    # cannot enter; download as ourselves instead of warning about it
    -o "APT::Sandbox::User=$(id -un)")
  log "fetching $pkg from Debian $suite ($(cat "$aptdir/sources.list"))" >&2
  "${apt[@]}" update >&2 || die "apt-get update for $suite failed"
  (cd "$srcroot" && rm -f "${pkg}"_* && "${apt[@]}" source --download-only "$pkg${version:+=$version}") >&2 \
    || die "apt-get source $pkg${version:+=$version} ($suite) failed"
  local dsc xopt=(--skip-debianization)
  [[ $mode == debian ]] && xopt=()
  dsc=$(ls "$srcroot/${pkg}"_*.dsc | head -n1)
  rm -rf "$srcdir"
  (cd "$srcroot" && dpkg-source "${xopt[@]}" -x "$(basename "$dsc")" "$pkg") >&2 \
    || die "dpkg-source -x $dsc failed"
  echo "$want" >"$srcroot/.$pkg-unpacked"
  echo "$srcdir"
}

# ---------------------------------------------------------------- builds
declare -A took
build_flavour() {
  local f=$1 prefix python src bdir logf start
  prefix=$(prefix_of "$f"); python=$(python_of "$f")
  if [[ -f $prefix/$STAMP ]]; then
    log "$f: reusing $prefix"; took[$f]=reused; return 0
  fi
  start=$SECONDS
  src=$(fetch_source "$(suite_of "$f")" "$(srcpkg_of "$f")")
  bdir=$CACHE/build/$f; logf=$CACHE/logs/$f.log
  rm -rf "$bdir" "$prefix"; mkdir -p "$bdir"
  local conf=(--prefix="$prefix" --enable-shared --without-ensurepip
              "LDFLAGS=-Wl,-rpath,$prefix/lib")
  local env=()
  case $f in
    3.9) ;;
    # trixie's 3.13 normally builds against system libmpdec 4 / expat; bookworm
    # lacks libmpdec-dev, so use CPython's bundled copies for both.
    3.13) conf+=(--without-system-libmpdec --without-system-expat) ;;
    3.13t) conf+=(--without-system-libmpdec --without-system-expat --disable-gil) ;;
    3.13-tsan)
      conf+=(--without-system-libmpdec --without-system-expat --with-thread-sanitizer CC=clang CXX=clang++)
      # The freshly built interpreter runs during make/make install (freezing,
      # compileall). Use CPython's own suppressions and send any TSan reports
      # to a log instead of failing the build on them.
      env=("TSAN_OPTIONS=suppressions=$src/Tools/tsan/suppressions.txt handle_segv=0 exitcode=0 log_path=$CACHE/logs/$f.tsan")
      ;;
  esac
  log "$f: building from $src in $bdir (log: $logf)"
  # (&&-chained: set -e does not apply inside a subshell that is followed by ||)
  ( ((${#env[@]} == 0)) || export "${env[@]}"
    cd "$bdir" &&
    echo "+ configure ${conf[*]}" &&
    nice -n 15 "$src/configure" "${conf[@]}" &&
    nice -n 15 make -j"$JOBS" &&
    nice -n 15 make install
  ) >"$logf" 2>&1 || { tail -n 40 "$logf" >&2; die "$f: build failed, see $logf"; }
  [[ -x $python ]] || die "$f: $python was not installed"
  ( ((${#env[@]} == 0)) || export "${env[@]}"
    "$python" -c 'import ssl, ctypes, zlib, bz2, lzma, sqlite3, sysconfig' ) >>"$logf" 2>&1 \
    || { tail -n 20 "$logf" >&2; die "$f: stdlib import check (ssl ctypes zlib bz2 lzma sqlite3) failed"; }
  date -u +%FT%TZ >"$prefix/$STAMP"
  rm -rf "$bdir"   # ~250 MB per flavour, not needed once installed
  took[$f]="built in $((SECONDS - start))s"
  log "$f: done (${took[$f]})"
}

# absl-tsan: Debian bookworm's abseil (with Debian's patches, pinned to the
# installed libabsl-dev's source version), clang -fsanitize=thread, shared.
build_absl() {
  local f=absl-tsan prefix src bdir logf start version srcpkg
  prefix=$(prefix_of "$f")
  if [[ -f $prefix/$STAMP ]]; then
    log "$f: reusing $prefix"; took[$f]=reused; return 0
  fi
  start=$SECONDS
  local sys_inc=/usr/include/absl sys_lib=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
  srcpkg=$(dpkg-query -W -f='${source:Package}' libabsl-dev 2>/dev/null) || true
  version=$(dpkg-query -W -f='${source:Version}' libabsl-dev 2>/dev/null) || true
  [[ $srcpkg == "$(srcpkg_of "$f")" && -n $version ]] \
    || die "$f: cannot determine the abseil source version of the installed libabsl-dev"
  src=$(fetch_source "$(suite_of "$f")" "$(srcpkg_of "$f")" "$version" debian)
  # Debian's patches decide the ABI (std:: aliasing, inline namespace): the
  # source must carry exactly the installed options.h. Checked again after
  # install, together with the whole header tree.
  cmp -s "$src/absl/base/options.h" "$sys_inc/base/options.h" || {
    diff -u "$sys_inc/base/options.h" "$src/absl/base/options.h" >&2 || true
    die "$f: absl/base/options.h of abseil $version ($src) differs from the installed $sys_inc/base/options.h"; }
  bdir=$CACHE/build/$f; logf=$CACHE/logs/$f.log
  rm -rf "$bdir" "$prefix"; mkdir -p "$bdir"
  local san="-fsanitize=thread -fno-omit-frame-pointer"
  # debian/rules: -DCMAKE_CXX_STANDARD=17, static + shared builds (the shared
  # one is what we need); everything else is upstream's defaults.
  local conf=(-S "$src" -B "$bdir/build"
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
    "-DCMAKE_CXX_FLAGS=$san"
    -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON
    -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF -DABSL_BUILD_TESTING=OFF
    -DABSL_ENABLE_INSTALL=ON
    "-DCMAKE_INSTALL_PREFIX=$prefix" -DCMAKE_INSTALL_LIBDIR=lib
    "-DCMAKE_INSTALL_RPATH=$prefix/lib")
  log "$f: building abseil $version from $src in $bdir (log: $logf)"
  ( export CC=clang CXX=clang++
    echo "+ cmake ${conf[*]}" &&
    nice -n 15 cmake "${conf[@]}" &&
    nice -n 15 cmake --build "$bdir/build" --parallel "$JOBS" &&
    nice -n 15 cmake --install "$bdir/build"
  ) >"$logf" 2>&1 || { tail -n 40 "$logf" >&2; die "$f: build failed, see $logf"; }

  # -- checks; any failure leaves no stamp
  [[ -f $prefix/lib/cmake/absl/abslConfig.cmake ]] || die "$f: $prefix/lib/cmake/absl/abslConfig.cmake was not installed"
  cmp "$prefix/include/absl/base/options.h" "$sys_inc/base/options.h" \
    || die "$f: installed $prefix/include/absl/base/options.h differs from $sys_inc/base/options.h"
  diff -r "$sys_inc" "$prefix/include/absl" >>"$logf" 2>&1 \
    || die "$f: headers in $prefix/include/absl differ from $sys_inc (diff at the end of $logf)"
  # same shared libraries (SONAMEs) as Debian's libabsl20220623, all instrumented
  local ours theirs
  ours=$(cd "$prefix/lib" && ls libabsl_*.so.* | grep -E '\.so\.[0-9]+$' | sort)
  theirs=$(cd "$sys_lib" && ls libabsl_*.so.* | grep -E '\.so\.[0-9]+$' | sort)
  [[ $ours == "$theirs" ]] || {
    diff <(echo "$theirs") <(echo "$ours") >&2 || true
    die "$f: shared libraries in $prefix/lib differ from Debian's in $sys_lib"; }
  nm -D --undefined-only "$prefix/lib/libabsl_synchronization.so" | grep -q '__tsan_' \
    || die "$f: $prefix/lib/libabsl_synchronization.so is not TSan-instrumented"
  # Known TSan false positive inside abseil itself (google/sanitizers#953):
  # Mutex internals run with TSan's sync tracking switched off, so a new
  # thread's ThreadIdentity (mmap'ed by LowLevelAlloc) is not seen as published
  # when another thread's Unlock wakes it via Waiter::Post. Reported at most
  # once per process, on first contention, in most runs; suppress exactly that.
  local supp=$prefix/share/leakguard/absl-tsan.supp
  mkdir -p "${supp%/*}"
  cat >"$supp" <<'SUPP'
# TSan suppressions for leakguard's absl-tsan (abseil 20220623, Debian).
# Abseil-internal false positive (google/sanitizers#953): Waiter::Post on a
# ThreadIdentity whose publication happened inside Mutex code, where TSan
# ignores synchronization.
race:synchronization_internal::Waiter::Post
SUPP
  # consumer check: find_package(absl) via CMAKE_PREFIX_PATH must pick this
  # prefix over /usr, and TSan must see absl::Mutex: no race on a
  # Mutex-guarded counter (with $supp), but a race when it is unguarded.
  local chk=$bdir/check
  mkdir -p "$chk"
  cat >"$chk/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(absl_tsan_check CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(Threads REQUIRED)
find_package(absl REQUIRED CONFIG)
message(STATUS "absl_DIR=${absl_DIR}")
add_executable(mutex_check mutex_check.cc)
target_link_libraries(mutex_check absl::synchronization Threads::Threads)
add_executable(nolock_check mutex_check.cc)
target_compile_definitions(nolock_check PRIVATE NO_LOCK)
target_link_libraries(nolock_check absl::synchronization Threads::Threads)
CMAKE
  cat >"$chk/mutex_check.cc" <<'CXX'
#include <thread>
#include <vector>
#include "absl/synchronization/mutex.h"
int main() {
  absl::Mutex mu;
  int counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
#ifndef NO_LOCK
        absl::MutexLock l(&mu);
#endif
        ++counter;
      }
    });
  for (auto& t : ts) t.join();
#ifdef NO_LOCK
  return 0;
#else
  return counter == 400000 ? 0 : 1;
#endif
}
CXX
  ( export CC=clang CXX=clang++
    nice -n 15 cmake -S "$chk" -B "$chk/build" "-DCMAKE_PREFIX_PATH=$prefix" \
      "-DCMAKE_CXX_FLAGS=$san" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread &&
    nice -n 15 cmake --build "$chk/build"
  ) >>"$logf" 2>&1 || { tail -n 20 "$logf" >&2; die "$f: consumer check failed to build, see $logf"; }
  grep -qxF "absl_DIR:PATH=$prefix/lib/cmake/absl" "$chk/build/CMakeCache.txt" \
    || die "$f: find_package(absl) with CMAKE_PREFIX_PATH=$prefix did not find $prefix/lib/cmake/absl"
  TSAN_OPTIONS="suppressions=$supp exitcode=66 log_path=$chk/tsan" nice -n 15 "$chk/build/mutex_check" >>"$logf" 2>&1 \
    && ! compgen -G "$chk/tsan*" >/dev/null || {
    cat "$chk"/tsan* >>"$logf" 2>/dev/null || true
    die "$f: TSan reported a race on an absl::Mutex-guarded counter (see $logf)"; }
  local rc=0
  TSAN_OPTIONS="suppressions=$supp exitcode=66 log_path=$chk/nolock" nice -n 15 "$chk/build/nolock_check" >>"$logf" 2>&1 || rc=$?
  [[ $rc == 66 ]] && grep -qs 'WARNING: ThreadSanitizer: data race' "$chk"/nolock* \
    || die "$f: TSan did not report the race on an unguarded counter (exit $rc): is it active?"
  echo "abseil $version (Debian bookworm, Debian patches) clang -fsanitize=thread; $(date -u +%FT%TZ)" \
    >"$prefix/$STAMP"
  rm -rf "$bdir"
  took[$f]="built in $((SECONDS - start))s"
  log "$f: done (${took[$f]})"
}

for f in "${flavours[@]}"; do
  if [[ $f == absl-tsan ]]; then build_absl; else build_flavour "$f"; fi
done

echo
echo "pythons.sh: summary"
for f in "${flavours[@]}"; do
  if [[ $f == absl-tsan ]]; then
    printf '%-10s %s  %s  [%s]\n' "$f" "$(prefix_of "$f")" "$(head -n1 "$(prefix_of "$f")/$STAMP")" "${took[$f]}"
    continue
  fi
  python=$(python_of "$f")
  version=$(TSAN_OPTIONS=exitcode=0 "$python" -c 'import sys; print(" ".join(sys.version.split()))') \
    || die "$f: $python does not run"
  printf '%-10s %s  %s  [%s]\n' "$f" "$python" "$version" "${took[$f]}"
done
