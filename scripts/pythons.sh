#!/usr/bin/env bash
# pythons.sh — build the CPython interpreters leakguard is tested against, once,
# into a cache outside the source tree.
#
#   scripts/pythons.sh [FLAVOUR...]        build the named flavours (default: all)
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
# is wrong for a self-contained prefix.
#
# A flavour is done when $prefix/.leakguard-complete exists (written last,
# after an import check of ssl/ctypes/zlib/bz2/lzma/sqlite3); later runs reuse
# it. Delete the prefix (or that file) to force a rebuild. Build logs are in
# $cache/logs/FLAVOUR.log; build dirs ($cache/build/FLAVOUR) are removed after
# success. Heavy steps run under `nice -n 15` with make -j2
# (override with LEAKGUARD_JOBS).
set -euo pipefail

CACHE=${LEAKGUARD_PYTHONS:-$HOME/.cache/leakguard/pythons}
JOBS=${LEAKGUARD_JOBS:-2}
ALL_FLAVOURS=(3.9 3.13 3.13t 3.13-tsan)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
STAMP=.leakguard-complete

die() { echo "pythons.sh: error: $*" >&2; exit 1; }
log() { echo "pythons.sh: $*"; }

check_flavour() {
  case $1 in 3.9|3.13|3.13t|3.13-tsan) ;; *) die "unknown flavour '$1' (known: ${ALL_FLAVOURS[*]})";; esac
}
prefix_of() { echo "$CACHE/$1"; }
python_of() {
  case $1 in
    3.9) echo "$CACHE/$1/bin/python3.9" ;;
    3.13t) echo "$CACHE/$1/bin/python3.13t" ;;
    *) echo "$CACHE/$1/bin/python3.13" ;;
  esac
}
suite_of() { case $1 in 3.9) echo bullseye ;; *) echo trixie ;; esac; }
srcpkg_of() { case $1 in 3.9) echo python3.9 ;; *) echo python3.13 ;; esac; }

# ---------------------------------------------------------------- arguments
flavours=()
while (($#)); do
  case $1 in
    --print-prefix|--print-python)
      (($# == 2)) || die "usage: $0 $1 FLAVOUR"
      check_flavour "$2"
      if [[ $1 == --print-prefix ]]; then prefix_of "$2"; else python_of "$2"; fi
      exit 0 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  pkgs=(dpkg-dev debian-archive-keyring build-essential pkg-config xz-utils
        libssl-dev zlib1g-dev libbz2-dev libffi-dev liblzma-dev libsqlite3-dev
        libreadline-dev libncurses-dev uuid-dev libgdbm-dev)
  [[ " ${need_build[*]} " == *" 3.13-tsan "* ]] && pkgs+=(clang)
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

# fetch_source SUITE PKG -> prints the unpacked source dir
fetch_source() {
  local suite=$1 pkg=$2
  local aptdir=$CACHE/apt/$suite srcroot=$CACHE/src/$suite
  local srcdir=$srcroot/$pkg
  if [[ -f $srcroot/.$pkg-unpacked ]]; then echo "$srcdir"; return 0; fi
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
  (cd "$srcroot" && rm -f "${pkg}"_* && "${apt[@]}" source --download-only "$pkg") >&2 \
    || die "apt-get source $pkg ($suite) failed"
  local dsc
  dsc=$(ls "$srcroot/${pkg}"_*.dsc | head -n1)
  rm -rf "$srcdir"
  (cd "$srcroot" && dpkg-source --skip-debianization -x "$(basename "$dsc")" "$pkg") >&2 \
    || die "dpkg-source -x $dsc failed"
  touch "$srcroot/.$pkg-unpacked"
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

for f in "${flavours[@]}"; do build_flavour "$f"; done

echo
echo "pythons.sh: summary"
for f in "${flavours[@]}"; do
  python=$(python_of "$f")
  version=$(TSAN_OPTIONS=exitcode=0 "$python" -c 'import sys; print(" ".join(sys.version.split()))') \
    || die "$f: $python does not run"
  printf '%-10s %s  %s  [%s]\n' "$f" "$python" "$version" "${took[$f]}"
done
