#!/bin/bash
# virtkeep - ssh:// throughput against scp and sftp moving the same bytes.
#
#   tests/bench/ssh-bench.sh URL FILE
#
# URL is ssh://USER@HOST:PORT/DIR (a directory the user may write), or
# "local": start the test harness sshd (tests/lib/harness.sh, root only) with a
# target directory in its scratch space.  FILE is what moves: 1 GiB of
# incompressible data is the reference (`head -c 1G /dev/urandom >FILE`).
#
# Each run uploads FILE with virtkeep (transport put, through
# tests/bench/ssh-bench.c), scp and `sftp -b`, then downloads it with each
# into a scratch file next to FILE (scp cannot write to /dev/null); the tools
# take turns so that a load change hits all of them.
# It prints JSON lines, one per tool and direction:
#   {"tool":"virtkeep","dir":"put","bytes":N,"runs":[S,...],"median_s":S,"mb_s":R}
# then what virtkeep's put commit took (the flush of the last writes, the
# fsync@openssh.com that scp and sftp do not do, close and rename):
#   {"tool":"virtkeep","dir":"put-commit","runs":[S,...],"median_s":S,"share_of_put":F}
# then one per ratio (virtkeep's throughput over the tool's, >= 0.9 is the target):
#   {"ratio":"put_vs_scp","value":R}
#
# Environment:
#   abs_top_builddir      the build tree (the driver is built into tests/bench/ there)
#   VK_SSH_KEY, VK_SSH_KNOWN_HOSTS   the key and known_hosts (set by "local")
#   VIRTKEEP_BENCH_RUNS   runs (default 3; the median is reported)
#   SSH_BENCH_BLOCK       bytes per virtkeep write and read (default 262144)
#   SSH_BENCH_BIN         a driver built elsewhere (e.g. from another revision,
#                         to compare), instead of building tests/bench/ssh-bench.c
#   SSH_BENCH_DIR         "local": where the target directory goes (default: the
#                         scratch directory; /dev/shm takes the disk, and the fsync
#                         virtkeep does at each commit and scp does not, out)
# Nothing here runs under make check.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
URL=${1:?usage: $0 URL FILE}
FILE=${2:?usage: $0 URL FILE}
B=$(cd "${abs_top_builddir:?set abs_top_builddir to the build tree}" && pwd)
RUNS=${VIRTKEEP_BENCH_RUNS:-3}
BLOCK=${SSH_BENCH_BLOCK:-262144}
[ -r "$FILE" ] || { echo "$0: cannot read '$FILE'" >&2; exit 2; }
BYTES=$(stat -c %s "$FILE")

if [ "$URL" = local ]; then
    export abs_top_srcdir=$SRC abs_top_builddir=$B
    # shellcheck source=../lib/harness.sh
    . "$SRC/tests/lib/harness.sh"
    vk_start_sshd
    tdir=${SSH_BENCH_DIR:-$VK_SCRATCH}/ssh-bench-target.$$
    mkdir -p "$tdir"
    vk_on_exit "rm -rf '$tdir'"
    URL=ssh://$VK_SSH_USER@127.0.0.1:$VK_SSH_PORT$tdir
fi
: "${VK_SSH_KEY:?set VK_SSH_KEY to the private key}"
: "${VK_SSH_KNOWN_HOSTS:?set VK_SSH_KNOWN_HOSTS to the known_hosts file}"
export VK_SSH_KEY VK_SSH_KNOWN_HOSTS
re='^ssh://([^@/]+)@([^:/]+)(:([0-9]+))?(/.*)$'
[[ $URL =~ $re ]] || { echo "$0: URL must be ssh://USER@HOST[:PORT]/DIR" >&2; exit 2; }
USER_=${BASH_REMATCH[1]} HOST=${BASH_REMATCH[2]} PORT=${BASH_REMATCH[4]:-22} DIR=${BASH_REMATCH[5]}

BIN=${SSH_BENCH_BIN:-$B/tests/bench/ssh-bench}
if [ -z "${SSH_BENCH_BIN:-}" ]; then
    mkdir -p "$B/tests/bench"
    gcc -O2 -g -std=gnu11 -pthread -I"$B" -I"$SRC" -o "$BIN" "$SRC/tests/bench/ssh-bench.c" \
        "$B/transport/libtransport.a" "$B/common/libcommon.a" -lssh2 -lcurl -lxml2 -lcrypto
fi

SSHOPT=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$VK_SSH_KNOWN_HOSTS"
    -i "$VK_SSH_KEY")
now() { date +%s.%N; }
timed() { # timed CMD...: prints the seconds CMD took; fails with it
    local t0
    t0=$(now)
    "$@" >/dev/null || return 1
    echo "$(now) - $t0" | bc
}
VKOUT=$FILE.ssh-bench-vk
vk_put() { "$BIN" put "$URL" bench.dat "$FILE" "$BLOCK" >"$VKOUT"; }
vk_get() { "$BIN" get "$URL" bench.dat "$OUT" "$BLOCK"; }
scp_put() { scp -q -P "$PORT" "${SSHOPT[@]}" "$FILE" "$USER_@[$HOST]:$DIR/scp.dat"; }
scp_get() { scp -q -P "$PORT" "${SSHOPT[@]}" "$USER_@[$HOST]:$DIR/scp.dat" "$OUT"; }
sftp_b() { sftp -q -b - -P "$PORT" "${SSHOPT[@]}" "$USER_@[$HOST]" <<<"$1"; }
sftp_put() { sftp_b "put $FILE $DIR/sftp.dat"; }
sftp_get() { sftp_b "get $DIR/sftp.dat $OUT"; }

OUT=$FILE.ssh-bench-out
if declare -F vk_on_exit >/dev/null; then
    vk_on_exit "rm -f '$OUT' '$VKOUT'" # the harness owns the EXIT trap
else
    trap 'rm -f "$OUT" "$VKOUT"' EXIT
fi
declare -A T
cat "$FILE" >/dev/null # from the page cache for everyone
for ((i = 0; i < RUNS; i++)); do
    for op in put get; do
        for tool in vk scp sftp; do
            T[$tool.$op]+=" $(timed "${tool}_$op")"
            if [ "$tool.$op" = vk.put ]; then
                T[vk.commit]+=" $(sed -n 's/.*commit_seconds=\([0-9.]*\).*/\1/p' "$VKOUT")"
            fi
        done
    done
done
sftp_b "rm $DIR/sftp.dat" >/dev/null 2>&1 || true
sftp_b "rm $DIR/scp.dat" >/dev/null 2>&1 || true
sftp_b "rm $DIR/bench.dat" >/dev/null 2>&1 || true

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A M
for op in put get; do
    for tool in vk scp sftp; do
        M[$tool.$op]=$(median <<<"${T[$tool.$op]}")
        name=$tool
        [ "$tool" = vk ] && name=virtkeep
        runs=$(echo ${T[$tool.$op]} | tr ' ' ',')
        printf '{"tool":"%s","dir":"%s","bytes":%s,"runs":[%s],"median_s":%s,"mb_s":%.1f}\n' \
            "$name" "$op" "$BYTES" "$runs" "${M[$tool.$op]}" \
            "$(echo "$BYTES / ${M[$tool.$op]} / 1000000" | bc -l)"
    done
done
M[vk.commit]=$(median <<<"${T[vk.commit]}")
printf '{"tool":"virtkeep","dir":"put-commit","runs":[%s],"median_s":%s,"share_of_put":%.3f}\n' \
    "$(echo ${T[vk.commit]} | tr ' ' ',')" "${M[vk.commit]}" \
    "$(echo "${M[vk.commit]} / ${M[vk.put]}" | bc -l)"
for op in put get; do
    for tool in scp sftp; do
        printf '{"ratio":"%s_vs_%s","value":%.2f}\n' "$op" "$tool" \
            "$(echo "${M[$tool.$op]} / ${M[vk.$op]}" | bc -l)"
    done
done
