#!/bin/bash
# Build the libFuzzer targets (tests/fuzz/fuzz-*.c) with clang, against a copy of
# the worker library compiled with -fsanitize=fuzzer-no-link,address,undefined.
#
#   fuzz-build.sh SRCDIR BUILDDIR OUTDIR
#
# The objects are cached in OUTDIR/obj and rebuilt only when a source or
# header is newer.  Exits 77 when clang cannot build fuzzers.
set -euo pipefail

srcdir=$1 builddir=$2 outdir=$3
CLANG=${CLANG:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -I$srcdir -I$builddir"
pc() { pkg-config "$@" libvirt libvirt-qemu libnbd libzstd libarchive libcurl libssh2 \
    sqlite3 libpq json-c inih libcrypto libxml-2.0 libmicrohttpd; }

if ! command -v "$CLANG" >/dev/null ||
    ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' |
    "$CLANG" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
    echo "fuzz-build: $CLANG cannot build libFuzzer targets" >&2
    exit 77
fi

mkdir -p "$outdir/obj"
# Every library source, at any depth (the tree may have one folder per
# module), but the front ends' mains.
lib_sources=$(cd "$srcdir" && find common transport catalog src -name '*.c' | LC_ALL=C sort |
    grep -v -e '^src/cli' -e 'virtkeepd\.c$')
newest_header=$(cd "$srcdir" && find common transport catalog src -name '*.h' -printf '%T@ %p\n' |
    sort -n | tail -n 1 | cut -d' ' -f2)

objs=()
for src in $lib_sources; do
    obj="$outdir/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
    objs+=("$obj")
    if [ ! -e "$obj" ] || [ "$srcdir/$src" -nt "$obj" ] || [ "$srcdir/$newest_header" -nt "$obj" ]; then
        # shellcheck disable=SC2046
        "$CLANG" $CFLAGS $SAN -fsanitize=fuzzer-no-link $(pc --cflags) -c "$srcdir/$src" -o "$obj"
    fi
done

for fz in "$srcdir"/tests/fuzz/fuzz-*.c; do
    name=$(basename "$fz" .c)
    # shellcheck disable=SC2046
    "$CLANG" $CFLAGS $SAN -fsanitize=fuzzer $(pc --cflags) "$fz" "${objs[@]}" \
        $(pc --libs) -pthread -o "$outdir/$name"
done
echo "fuzz-build: built $(ls "$srcdir"/tests/fuzz/fuzz-*.c | wc -l) targets in $outdir"
