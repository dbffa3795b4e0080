#!/bin/bash
# virtkeep - pipeline_run alone against qemu-nbd, and zstd on the same data.
#
#   tests/bench/pipeline-bench.sh BUILDDIR [LEVEL [THREADS [RUNS [SINK [NICE]]]]]
#
# Builds BUILDDIR/tests/bench/pipeline-bench from tests/bench/pipeline-bench.c,
# serves the benchmark image (tests/bench/image.sh; the cache of make bench)
# with qemu-nbd -r, and prints per run: wall and CPU of the pipeline, CPU of
# qemu-nbd, then `zstd -LEVEL -TTHREADS` over the allocated data from the page
# cache.  SINK: "null" (default) or "archive" (writes through archive_writer
# into a scratch file, page cache, no fsync).  NICE: the workers' worker_nice
# (default 0).  Not part of make check.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=$(cd "${1:?usage: $0 BUILDDIR [LEVEL [THREADS [RUNS [SINK]]]]}" && pwd)
LEVEL=${2:-1} THREADS=${3:-2} RUNS=${4:-3} SINK=${5:-null} NICE=${6:-0}
IMG=${VIRTKEEP_BENCH_CACHE:-/var/cache/virtkeep-bench}/gendisk-v1
[ -f "$IMG/complete" ] || { echo "no benchmark image in $IMG (run make bench once)" >&2; exit 77; }
mkdir -p "$B/tests/bench"
BIN=$B/tests/bench/pipeline-bench
# shellcheck disable=SC2046
gcc -O2 -g -std=gnu11 -pthread -I"$B" -I"$SRC" -I/usr/include/json-c -o "$BIN" "$SRC/tests/bench/pipeline-bench.c" \
    "$B/src/libvirtkeep.a" "$B/catalog/libcatalog.a" "$B/transport/libtransport.a" \
    "$B/common/libcommon.a" -lvirt -lvirt-qemu -lnbd -lzstd -larchive -lcurl -lssh2 -lsqlite3 \
    -ljson-c -linih -lcrypto -lxml2
T=$(mktemp -d /tmp/pbench.XXXXXX)
trap 'kill "$(cat "$T/pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$T"' EXIT
cat "$IMG/disk.qcow2" "$IMG/alloc.raw" >/dev/null
qemu-nbd -r -f qcow2 -x vda -k "$T/sock" --persistent --pid-file "$T/pid" --fork \
    "$IMG/disk.qcow2"
pid=$(cat "$T/pid")
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
out=null
[ "$SINK" = archive ] && out=$T/vda.tar
for i in $(seq "$RUNS"); do
    t0=$(ticks)
    line=$("$BIN" "$T/sock" vda "$LEVEL" "$THREADS" 0 "$out" 0 "$NICE")
    t1=$(ticks)
    echo "pipeline run $i: $line qemu_nbd_cpu_s=$(echo "scale=2; ($t1 - $t0) / $hz" | bc)"
    rm -f "$T/vda.tar"
done
for i in $(seq "$RUNS"); do
    /usr/bin/time -f "zstd run $i: wall_s=%e user_s=%U sys_s=%S" \
        zstd "-$LEVEL" "-T$THREADS" -q -c "$IMG/alloc.raw" >/dev/null
done
