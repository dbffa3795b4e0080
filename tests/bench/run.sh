#!/bin/bash
# virtkeep - the benchmarks (`make bench`; needs root).  They measure and
# never run under make check.
#
# One run measures, on a deterministic disk (tests/bench/gendisk.c: 4 GiB
# virtual, 1.5 GiB allocated: random, text-like and zero-written regions):
#
#   full     virtkeep full backup of a running domain: wall, CPU, size, peak RSS
#   sealed   the same backup sealed (encryption = aes-256-gcm), beside
#            OpenSSL's AES-256-GCM speed (openssl speed -evp aes-256-gcm)
#   peer     virtnbdbackup -l full -z of the same running domain
#   zstd     the physical limit: zstd at the same level and threads over the
#            allocated data alone, from the page cache to /dev/null
#   inc64    an incremental with 1 MiB dirty on a 64 GiB virtual disk
#   restore  a full restore against qemu-img convert raw -> qcow2 of the same
#            data, then a point-in-time restore from a 10-deep incremental
#            chain against the full alone (when `virtkeep restore` exists)
#   profile  perf profile of one full backup: where virtkeep's CPU goes
#            (compression, digests, copies, NBD, kernel), tests/bench/profile.sh
#   remote   S3 (on radosgw) and SSH upload/download vs curl, scp and sftp,
#            and peak RSS during a 20 GiB multipart stream (tests/bench/remote.sh)
#   fleet    the scheduling simulation (tests/bench/fleet-sim.sh): 1,000 domains,
#            4 scheduler processes, 10 simulated days, SQLite against PostgreSQL:
#            claim latency and tick time at p50 and p99, no domain claimed twice,
#            every RPO held
#
# It prints a table against the targets of issues 3 and 4 and writes
# tests/bench/results-latest.json.  Each measurement is the median of
# VIRTKEEP_BENCH_RUNS runs.
#
# Environment:
#   VIRTKEEP_BENCH_RUNS     runs per measurement (default 3)
#   VIRTKEEP_BENCH_LEVEL    zstd level for virtkeep and the baseline; unset (the
#                           default): virtkeep runs without --compress-level, at
#                           the default users get, and the baseline uses that
#                           level (read from `virtkeep backup --help`)
#   VIRTKEEP_BENCH_THREADS  threads for virtkeep and the baseline; unset (the
#                           default): virtkeep runs without --threads (its
#                           default: the online CPUs), the baseline with -T$(nproc)
#   VIRTKEEP_BENCH_PARTS    which parts to run (default "full sealed peer zstd profile
#                           inc64 restore remote fleet")
#   VIRTKEEP_BENCH_CACHE    image cache (default /var/cache/virtkeep-bench)
#   VIRTKEEP_BENCH_PAUSE    1 (default): pause the vCPUs of the benchmark domains
#                           (QEMU keeps serving the backup jobs) so that the idle
#                           guest's CPU use is not charged to the tools; 0: leave
#                           them running
#   VIRTKEEP_BENCH_IDLE_WAIT  wait up to this many seconds (default 600) before
#                           each measurement until the CPUs are idle (another job
#                           on the machine skews every figure); the busy share
#                           seen last is reported as busy_before
#   VIRTKEEP_BENCH_STRICT=1 exit 1 when a target is missed
#   VIRTKEEP_DEBUG          passed to virtkeep (its logs land in the log dir)
set -euo pipefail

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${abs_top_srcdir:=$(cd "$BENCH_SRC/../.." && pwd)}"
: "${abs_top_builddir:=$abs_top_srcdir}"
export abs_top_srcdir abs_top_builddir

# scripts/lib.sh installs packages and starts libvirtd (making /dev/kvm
# usable); tests/lib/harness.sh gives the scratch directory, the cleanup stack
# and the domain helpers.  Its vk_start_libvirtd replaces lib.sh's, so call
# lib.sh's first.
. "$abs_top_srcdir/scripts/lib.sh"
[ "$(id -u)" = 0 ] || vk_die "the benchmarks need root (run make bench with sudo)"
vk_install_debs virtnbdbackup time zstd jq qemu-utils libnbd-bin linux-perf "${VK_DEB_PACKAGES_RGW[@]}"
vk_start_libvirtd
. "$abs_top_srcdir/tests/lib/harness.sh"
vk_start_libvirtd

RUNS=${VIRTKEEP_BENCH_RUNS:-3}
# virtkeep's defaults unless asked otherwise: what users get is what counts.
LEVEL=${VIRTKEEP_BENCH_LEVEL:-}
THREADS=${VIRTKEEP_BENCH_THREADS:-}
PARTS=" ${VIRTKEEP_BENCH_PARTS:-full sealed peer zstd profile inc64 restore remote fleet} "
CACHE=${VIRTKEEP_BENCH_CACHE:-/var/cache/virtkeep-bench}
BUILD=$abs_top_builddir/tests/bench
LOGS=$BUILD/logs
RESULTS=$abs_top_srcdir/tests/bench/results-latest.json
VK_BIN=$abs_top_builddir/src/virtkeep
GENDISK=$BUILD/gendisk
MIB=$((1 << 20))

mkdir -p "$BUILD"
rm -rf "$LOGS"
mkdir -p "$LOGS"

. "$BENCH_SRC/lib-bench.sh"
bench_defaults
. "$BENCH_SRC/image.sh"
. "$BENCH_SRC/parts.sh"
. "$BENCH_SRC/remote.sh"
. "$BENCH_SRC/profile.sh"

bench_part() {
    case "$PARTS" in
    *" $1 "*) return 0 ;;
    *) return 1 ;;
    esac
}

bench_build_gendisk
IMG_VERSION=none
# (The remote and fleet parts need no image.)
case "$PARTS" in
" remote " | " fleet " | " remote fleet " | " fleet remote ") ;;
*) bench_image_prepare ;;
esac
bench_env_record

# (if, not &&: set -e must stay in force inside the parts.)
if bench_part full || bench_part sealed || bench_part peer || bench_part restore ||
    bench_part profile; then
    bench_domain_setup vkbench 4G "$IMG/disk.qcow2"
fi
if bench_part peer; then bench_run_peer vkbench; fi
if bench_part full; then bench_run_full vkbench; fi
if bench_part sealed; then bench_run_sealed vkbench; fi
if bench_part zstd; then bench_run_zstd; fi
if bench_part profile; then bench_run_profile vkbench; fi
if bench_part inc64; then bench_run_inc64; fi
if bench_part restore; then bench_run_restore vkbench; fi
if bench_part remote; then bench_run_remote; fi

if bench_part remote; then bench_report_remote; fi
bench_report
if bench_part fleet; then bash "$BENCH_SRC/fleet-sim.sh" "$abs_top_builddir"; fi
