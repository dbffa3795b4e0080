# shellcheck shell=bash
# virtkeep - part "remote" of make bench: S3 and SSH throughput against the
# standard tools, and peak RSS during a long multipart stream (issue 5).
# Sourced by run.sh after lib-bench.sh and tests/lib/harness.sh.
#
#   s3   tests/bench/xfer (transport.h, the code virtkeep uses) put/get of the
#        same 1 GiB of incompressible data against `curl --aws-sigv4` PUT -T /
#        GET, both on one Ceph radosgw (vk_start_rgw).
#   ssh  xfer put/get through ssh:// against `scp` and `sftp -b`, on one sshd
#        (vk_start_sshd).
#   big  VIRTKEEP_BENCH_BIG_GIB (20) GiB from /dev/zero through a pipe
#        (a stream of unknown size) into s3:// on a disk-backed s3rver:
#        peak RSS, RSS per GiB, the part sizes used; the object is deleted.
#
# Runs are interleaved (virtkeep, then each tool, RUNS times) and the
# medians compared: ratio = tool wall / virtkeep wall (= virtkeep
# throughput / tool throughput), target >= 0.9.
#
# The SSH store of the throughput runs is a tmpfs (VIRTKEEP_BENCH_REMOTE_TMPFS=1,
# the default): the VM's disk write-back would otherwise set the pace.  0
# puts it on disk.  (radosgw's OSD needs O_DIRECT: its file is on disk.)
# The big stream goes to s3rver on disk: it measures virtkeep's memory, and
# the 20 GiB would not fit radosgw's OSD file.
#
# Environment: VIRTKEEP_BENCH_REMOTE_MIB (1024) data size;
# VIRTKEEP_BENCH_BIG=0 skips the big stream; VIRTKEEP_BENCH_BIG_GIB (20).

XFER=$BUILD/xfer

bench_build_xfer() {
    local cc=${CC:-cc}
    # shellcheck disable=SC2046
    "$cc" -std=gnu11 -O2 -Wall -Wextra -Wshadow -Wvla -Wmissing-prototypes \
        -Wstrict-prototypes -Werror -pthread -I"$abs_top_srcdir" -I"$abs_top_builddir" \
        -o "$XFER" "$BENCH_SRC/xfer.c" "$abs_top_builddir/transport/libtransport.a" \
        "$abs_top_builddir/common/libcommon.a" \
        $(pkg-config --libs libcurl libssh2 libcrypto libxml-2.0) -pthread ||
        vk_fail "cannot build '$XFER'"
}

# remote_tmpfs DIR SIZE: a tmpfs on DIR until exit.
remote_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2,mode=0755" vkbench "$1"
    vk_on_exit "umount -l '$1'"
}

remote_data_make() {
    REMOTE_BYTES=$((${VIRTKEEP_BENCH_REMOTE_MIB:-1024} * MIB))
    REMOTE_DATA=$VK_SCRATCH/remote-data.bin
    # AES-CTR keystream: incompressible, fast, deterministic.
    { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:virtkeep-bench </dev/zero \
        2>/dev/null || true; } | head -c "$REMOTE_BYTES" >"$REMOTE_DATA"
    [ "$(stat -c %s "$REMOTE_DATA")" = "$REMOTE_BYTES" ] ||
        vk_fail "cannot generate '$REMOTE_DATA'"
    bench_set remote.bytes "$REMOTE_BYTES"
    bench_set remote.stores_tmpfs "${VIRTKEEP_BENCH_REMOTE_TMPFS:-1}"
}

# The S3 throughput runs against Ceph radosgw (tests/lib/rgw.sh: one mon, one
# bluestore OSD on a sparse file, on this machine's disk), a server that
# checks signatures and payload digests.  virtkeep signs each part's SHA-256
# (as it always does); curl sends UNSIGNED-PAYLOAD, the cheapest request a
# client can make.
remote_s3_setup() {
    vk_start_rgw vkbench
    bench_set remote.s3_server "radosgw $(radosgw --version 2>/dev/null | awk '{ print $3 }')"
    S3_URL="s3://$VK_S3_BUCKET/bench?endpoint=$VK_S3_ENDPOINT&region=$VK_S3_REGION"
    S3_HTTP=$VK_S3_ENDPOINT/$VK_S3_BUCKET/bench
    S3_XFER=("$XFER" --access-key "$VK_S3_ACCESS_KEY" --secret-file "$VK_S3_SECRET_FILE")
    # The test user's keys (the same secret as in the file), on a curl
    # config read from a file: not on the command line.
    printf 'user = "%s:%s"\n' "$VK_S3_ACCESS_KEY" "$(cat "$VK_S3_SECRET_FILE")" \
        >"$VK_SCRATCH/curl-s3.conf"
    chmod 0600 "$VK_SCRATCH/curl-s3.conf"
    S3_CURL=(curl -sS -f -K "$VK_SCRATCH/curl-s3.conf" --aws-sigv4 "aws:amz:$VK_S3_REGION:s3"
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
}

remote_ssh_setup() {
    local dir=$VK_SCRATCH/sshstore
    if [ "${VIRTKEEP_BENCH_REMOTE_TMPFS:-1}" = 1 ]; then
        remote_tmpfs "$dir" "$((5 * REMOTE_BYTES / MIB + 512))M"
    fi
    mkdir -p "$dir"
    vk_start_sshd
    SSH_DIR=$dir
    SSH_URL="ssh://$VK_SSH_USER@$VK_SSH_HOST:$VK_SSH_PORT$dir"
    SSH_XFER=("$XFER" --key-file "$VK_SSH_KEY" --known-hosts "$VK_SSH_KNOWN_HOSTS")
    SSH_OPTS=(-q -i "$VK_SSH_KEY" -o "UserKnownHostsFile=$VK_SSH_KNOWN_HOSTS"
        -o StrictHostKeyChecking=yes -o BatchMode=yes)
    SSH_DEST=$VK_SSH_USER@$VK_SSH_HOST
    printf 'put %s %s/sftp.bin\n' "$REMOTE_DATA" "$dir" >"$VK_SCRATCH/sftp-put.batch"
    printf 'get %s/sftp.bin /dev/null\n' "$dir" >"$VK_SCRATCH/sftp-get.batch"
}

# remote_time NAME I CMD...: one timed run, recorded under remote.NAME.
remote_time() {
    local name=$1 i=$2
    shift 2
    bench_time "remote.$name-$i" "$@" || {
        bench_error "remote: '$(bench_quote "$@")' failed (logs in $LOGS)"
        return 1
    }
    bench_set "remote.$name.runs.$i.wall_s" "$BT_WALL"
    bench_set "remote.$name.runs.$i.cpu_s" "$(awk -v u="$BT_USER" -v s="$BT_SYS" \
        'BEGIN { printf "%.2f", u + s }')"
    bench_set "remote.$name.runs.$i.rss_kib" "$BT_RSS"
    bench_set "remote.$name.runs.$i.busy_before" "$BT_LOAD"
    [ "$i" != 1 ] || bench_set "remote.$name.command" "$(cat "$LOGS/remote.$name-1.cmd")"
}

# Medians of what remote_time recorded for NAME, and the throughput.
remote_summarize() {
    local name=$1 f wall
    for f in wall_s cpu_s; do
        # shellcheck disable=SC2046
        bench_set "remote.$name.$f" "$(bench_median $(awk -F'\t' -v p="remote.$name.runs." \
            -v f=".$f" 'index($1, p) == 1 && substr($1, length($1) - length(f) + 1) == f \
            { print $2 }' "$BENCH_RESULTS_TSV"))"
    done
    wall=$(bench_get "remote.$name.wall_s")
    [ -z "$wall" ] || bench_set "remote.$name.mib_per_s" "$(awk -v b="$REMOTE_BYTES" \
        -v w="$wall" 'BEGIN { if (w > 0) printf "%.1f", b / 1048576 / w }')"
}

remote_s3_run() {
    local i d=$REMOTE_DATA
    remote_time s3.put.virtkeep "$1" "${S3_XFER[@]}" put "$S3_URL" vk.bin "$d" || return 1
    remote_time s3.put.curl "$1" "${S3_CURL[@]}" -T "$d" -o /dev/null "$S3_HTTP/curl.bin" ||
        return 1
    remote_time s3.get.virtkeep "$1" "${S3_XFER[@]}" get "$S3_URL" vk.bin /dev/null || return 1
    remote_time s3.get.curl "$1" "${S3_CURL[@]}" -o /dev/null "$S3_HTTP/curl.bin"
}

remote_ssh_run() {
    local d=$REMOTE_DATA p=$VK_SSH_PORT
    remote_time ssh.put.virtkeep "$1" "${SSH_XFER[@]}" put "$SSH_URL" vk.bin "$d" || return 1
    remote_time ssh.put.scp "$1" scp -P "$p" "${SSH_OPTS[@]}" "$d" "$SSH_DEST:$SSH_DIR/scp.bin" ||
        return 1
    remote_time ssh.put.sftp "$1" sftp -P "$p" "${SSH_OPTS[@]}" -b "$VK_SCRATCH/sftp-put.batch" \
        "$SSH_DEST" || return 1
    remote_time ssh.get.virtkeep "$1" "${SSH_XFER[@]}" get "$SSH_URL" vk.bin /dev/null || return 1
    remote_time ssh.get.scp "$1" scp -P "$p" "${SSH_OPTS[@]}" "$SSH_DEST:$SSH_DIR/scp.bin" \
        /dev/null || return 1
    remote_time ssh.get.sftp "$1" sftp -P "$p" "${SSH_OPTS[@]}" -b "$VK_SCRATCH/sftp-get.batch" \
        "$SSH_DEST"
}

# What virtkeep stored and read back must be the data (untimed).
remote_verify() {
    local what=$1 out=$VK_SCRATCH/verify.bin
    shift
    if "$@" "$out" >/dev/null 2>"$LOGS/remote.verify-$what.err" && cmp -s "$out" "$REMOTE_DATA"
    then
        bench_set "remote.$what.verified" true
    else
        bench_error "remote: the $what object read back differs from the data (or the read failed)"
    fi
    rm -f "$out"
}

remote_throughput() {
    local i
    remote_data_make
    remote_s3_setup
    remote_ssh_setup
    bench_warm "$REMOTE_DATA"
    for ((i = 1; i <= RUNS; i++)); do
        remote_s3_run "$i" || break
        remote_ssh_run "$i" || break
    done
    for i in s3.put.virtkeep s3.put.curl s3.get.virtkeep s3.get.curl ssh.put.virtkeep \
        ssh.put.scp ssh.put.sftp ssh.get.virtkeep ssh.get.scp ssh.get.sftp; do
        remote_summarize "$i"
    done
    remote_verify s3 "${S3_XFER[@]}" get "$S3_URL" vk.bin
    remote_verify s3-curl-put "${S3_XFER[@]}" get "$S3_URL" curl.bin
    remote_verify ssh "${SSH_XFER[@]}" get "$SSH_URL" vk.bin
    rm -f "$REMOTE_DATA"
}

# ---------------------------------------------------------------------------
# The big stream.

# The part sizes seen in the debug log, as "FIRST-LAST:SIZE" runs.
remote_big_parts() {
    sed -n "s/.*s3: put '[^']*': part \([0-9]*\) of \([0-9]*\) bytes.*/\1 \2/p" "$1" | sort -n |
        awk 'NR == 1 || $2 != size { if (NR > 1) printf "%d-%d:%d ", first, last, size;
                                     first = $1; size = $2 }
             { last = $1 } END { if (NR) printf "%d-%d:%d", first, last, size }'
}

remote_big() {
    local gib=${VIRTKEEP_BENCH_BIG_GIB:-20} avail need name=remote.big bytes parts maxpart
    bytes=$((gib << 30))
    # s3rver keeps the parts until the complete has concatenated them.
    need=$((2 * gib + 4))
    avail=$(($(df -P -k "$VK_SCRATCH" | awk 'NR == 2 { print $4 }') >> 20))
    if [ "$avail" -lt "$need" ]; then
        bench_note "remote big stream not run: $avail GiB free in $VK_SCRATCH, it needs $need"
        return 0
    fi
    VK_SCRATCH=$VK_SCRATCH/big vk_start_s3rver vkbig
    local url="s3://$VK_S3_BUCKET/big?endpoint=$VK_S3_ENDPOINT&region=$VK_S3_REGION"
    local x=("$XFER" --access-key "$VK_S3_ACCESS_KEY" --secret-file "$VK_S3_SECRET_FILE")
    bench_set "$name.bytes" "$bytes"
    bench_set "$name.command" "head -c $bytes /dev/zero | VIRTKEEP_DEBUG=1 $(bench_quote \
        "${x[@]}" --progress 1G put "$url" stream.bin -)"
    bench_wait_idle
    if ! head -c "$bytes" /dev/zero |
        VIRTKEEP_DEBUG=1 /usr/bin/time -f '%e %U %S %M' -o "$LOGS/$name.time" \
            "${x[@]}" --progress 1G put "$url" stream.bin - >"$LOGS/$name.out" \
            2>"$LOGS/$name.err"; then
        bench_error "remote: the $gib GiB stream failed: $(grep -v 'debug:' "$LOGS/$name.err" |
            tail -n 3)"
        return 0
    fi
    read -r BT_WALL BT_USER BT_SYS BT_RSS < <(tail -n 1 "$LOGS/$name.time")
    bench_set "$name.wall_s" "$BT_WALL"
    bench_set "$name.cpu_s" "$(awk -v u="$BT_USER" -v s="$BT_SYS" 'BEGIN { print u + s }')"
    bench_set "$name.rss_kib" "$BT_RSS"
    bench_set "$name.stored_bytes" "$("${x[@]}" stat "$url" stream.bin)"
    [ "$(bench_get "$name.stored_bytes")" = "$bytes" ] ||
        bench_error "remote: the stream stored $(bench_get "$name.stored_bytes") bytes, not $bytes"
    "${x[@]}" delete "$url" stream.bin || bench_error "remote: cannot delete the big object"
    awk '/^progress / { split($2, b, "="); split($3, r, "=");
                        printf "%d\t%s\n", b[2] / 1073741824, r[2] }' "$LOGS/$name.err" |
        while IFS=$'\t' read -r g r; do bench_set "$name.rss_kib_at_gib.$g" "$r"; done
    parts=$(remote_big_parts "$LOGS/$name.err")
    bench_set "$name.parts" "$parts"
    bench_set "$name.part_count" "$(echo "$parts" | awk -F'[-:]' '{ print $(NF - 1) }')"
    maxpart=$(echo "$parts" | tr ' ' '\n' | awk -F: '$2 > m { m = $2 } END { print m + 0 }')
    # s3-put.c: at most PARALLEL parts queued or in flight plus the one being
    # filled; the driver's block; 64 MiB for the program, libraries and curl.
    REMOTE_BIG_BOUND=$(((9 * maxpart + 8 * MIB + 64 * MIB) / 1024))
    bench_set "$name.rss_bound_kib" "$REMOTE_BIG_BOUND"
    bench_set "$name.rss_bound" "(parallel 8 + 1) x max part $maxpart + 8 MiB block + 64 MiB"
}

bench_run_remote() {
    if ! command -v openssl >/dev/null || ! command -v scp >/dev/null ||
        ! command -v sftp >/dev/null; then
        bench_note "remote part not run: it needs openssl, scp and sftp"
        return 0
    fi
    bench_build_xfer
    remote_throughput
    if [ "${VIRTKEEP_BENCH_BIG:-1}" = 1 ]; then
        remote_big
    else
        bench_note "remote big stream skipped (VIRTKEEP_BENCH_BIG=0)"
    fi
}

# ---------------------------------------------------------------------------
# The report.

remote_ratio_row() {
    local what=$1 tool=$2 label=$3
    bench_target "remote_${what//./_}_vs_$tool" "$(bench_ratio \
        "$(bench_get "remote.$what.$tool.wall_s")" "$(bench_get "remote.$what.virtkeep.wall_s")")" \
        ">=" 0.9 x "$label"
}

bench_report_remote() {
    local k rss
    echo
    echo "Remote targets (median of $RUNS runs, $(bench_mib "${REMOTE_BYTES:-0}") MiB each," \
        "stores on $([ "${VIRTKEEP_BENCH_REMOTE_TMPFS:-1}" = 1 ] && echo tmpfs || echo disk))"
    for k in s3.put.virtkeep s3.put.curl s3.get.virtkeep s3.get.curl ssh.put.virtkeep \
        ssh.put.scp ssh.put.sftp ssh.get.virtkeep ssh.get.scp ssh.get.sftp; do
        [ -n "$(bench_get "remote.$k.wall_s")" ] || continue
        bench_row "$k" "$(bench_get "remote.$k.mib_per_s") MiB/s, $(bench_get \
            "remote.$k.wall_s") s wall, $(bench_get "remote.$k.cpu_s") s CPU"
    done
    if [ -n "$(bench_get remote.big.wall_s)" ]; then
        bench_row "big stream" "$(bench_mib "$(bench_get remote.big.bytes)") MiB in \
$(bench_get remote.big.wall_s) s, parts $(bench_get remote.big.parts)"
    fi
    echo
    echo "Targets (remote)"
    remote_ratio_row s3.put curl "S3 upload vs curl PUT (radosgw)"
    remote_ratio_row s3.get curl "S3 download vs curl GET (radosgw)"
    remote_ratio_row ssh.put scp "SSH upload vs scp"
    remote_ratio_row ssh.put sftp "SSH upload vs sftp"
    remote_ratio_row ssh.get scp "SSH download vs scp"
    remote_ratio_row ssh.get sftp "SSH download vs sftp"
    rss=$(bench_get remote.big.rss_kib)
    [ -n "$rss" ] || return 0
    rss=$(bench_mib "$((rss * 1024))")
    bench_target remote_big_peak_rss "$rss" "<=" \
        "$(bench_mib "$((${REMOTE_BIG_BOUND:-0} * 1024))")" MiB \
        "peak RSS, $(bench_mib "$(bench_get remote.big.bytes)") MiB multipart stream"
}
