# shellcheck shell=bash
# virtkeep - benchmark helpers: timing, results, the report.  Sourced by
# tests/bench/run.sh after tests/lib/harness.sh.

BENCH_RESULTS_TSV=$VK_SCRATCH/results.tsv
BENCH_ERRORS=0
BENCH_MISSES=0
: >"$BENCH_RESULTS_TSV"

# bench_set KEY VALUE: record a result; KEY is a dotted path in the JSON.
bench_set() {
    printf '%s\t%s\n' "$1" "$2" >>"$BENCH_RESULTS_TSV"
}

# bench_get KEY: the last value recorded under KEY (empty when none).
bench_get() {
    awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "$BENCH_RESULTS_TSV"
}

bench_note() {
    vk_log "note: $*"
    bench_set "notes.$(wc -l <"$BENCH_RESULTS_TSV")" "$*"
}

bench_error() {
    vk_log "ERROR: $*"
    BENCH_ERRORS=$((BENCH_ERRORS + 1))
    bench_set "errors.$BENCH_ERRORS" "$*"
}

# The exact command line, shell-quoted, for the report.
bench_quote() {
    local q
    printf -v q '%q ' "$@"
    echo "${q% }"
}

bench_median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2];
                                 else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# bench_time NAME CMD...: run CMD once and set BT_WALL (s), BT_USER, BT_SYS
# (s) and BT_RSS (KiB, the child's peak).  Stdout goes to $LOGS/NAME.out
# (or $BT_STDOUT), stderr to $LOGS/NAME.err.  Dirty pages are flushed
# first so that one run's write-back is not charged to the next.  Returns
# the command's exit status.
bench_time() {
    local name=$1 tf t0 t1 rc=0
    shift
    tf=$LOGS/$name.time
    bench_quote "$@" >"$LOGS/$name.cmd"
    sync
    bench_wait_idle
    t0=$(date +%s%N)
    /usr/bin/time -f '%U %S %M' -o "$tf" "$@" >"${BT_STDOUT:-$LOGS/$name.out}" \
        2>"$LOGS/$name.err" || rc=$?
    t1=$(date +%s%N)
    if [ "$rc" != 0 ]; then
        vk_log "'$(cat "$LOGS/$name.cmd")' failed with exit status $rc:"
        tail -n 20 "$LOGS/$name.err" | sed 's/^/    /' >&2
        return "$rc"
    fi
    BT_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    read -r BT_USER BT_SYS BT_RSS < <(tail -n 1 "$tf")
    vk_log "$name: ${BT_WALL}s wall, ${BT_USER}s user, ${BT_SYS}s sys, ${BT_RSS} KiB peak RSS"
}

# Share of the machine's CPU time spent busy over the next 2 seconds (0-1).
bench_busy() {
    local a b
    a=$(head -n 1 /proc/stat)
    sleep 2
    b=$(head -n 1 /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '
        { idle[NR] = $5 + $6; total[NR] = 0; for (i = 2; i <= NF; i++) total[NR] += $i }
        END { t = total[2] - total[1]; printf "%.2f", (t > 0 ? 1 - (idle[2] - idle[1]) / t : 0) }'
}

# On a shared machine other jobs skew every figure: wait (up to
# VIRTKEEP_BENCH_IDLE_WAIT seconds, default 600) until the CPUs are less
# than VIRTKEEP_BENCH_IDLE_BUSY (default 0.15) busy, then record what was
# left in BT_LOAD so that the report shows what the run competed with.
bench_wait_idle() {
    local max=${VIRTKEEP_BENCH_IDLE_WAIT:-600} limit=${VIRTKEEP_BENCH_IDLE_BUSY:-0.15}
    local waited=0 busy
    busy=$(bench_busy)
    while awk -v b="$busy" -v m="$limit" 'BEGIN { exit !(b >= m) }' && [ "$waited" -lt "$max" ]; do
        [ "$waited" != 0 ] || vk_log "waiting for the CPUs to be idle (now $busy busy)"
        sleep 3
        waited=$((waited + 5))
        busy=$(bench_busy)
    done
    BT_LOAD=$busy
    [ "$waited" = 0 ] || vk_log "waited ${waited}s; CPUs now $busy busy"
}

# bench_runs PREFIX N CMD...: bench_time PREFIX-1..N, record each run under
# PREFIX.runs.I.* and the medians under PREFIX.{wall,user,sys,cpu,rss_kib}.
# With BR_BEFORE / BR_AFTER set (for this call: BR_AFTER=f bench_runs ...),
# the function they name runs with I before / after each run.  The command
# line of run 1 is recorded under PREFIX.command.
bench_runs() {
    local prefix=$1 n=$2 i walls=() cpus=() users=() syss=() rsss=() busys=()
    shift 2
    for ((i = 1; i <= n; i++)); do
        if [ -n "${BR_BEFORE:-}" ]; then
            "$BR_BEFORE" "$i" || return 1
        fi
        bench_time "$prefix-$i" "$@" || return 1
        walls+=("$BT_WALL")
        users+=("$BT_USER")
        syss+=("$BT_SYS")
        cpus+=("$(awk -v u="$BT_USER" -v s="$BT_SYS" 'BEGIN { printf "%.2f", u + s }')")
        rsss+=("$BT_RSS")
        bench_set "$prefix.runs.$i.wall_s" "$BT_WALL"
        bench_set "$prefix.runs.$i.cpu_s" "${cpus[-1]}"
        bench_set "$prefix.runs.$i.rss_kib" "$BT_RSS"
        bench_set "$prefix.runs.$i.busy_before" "$BT_LOAD"
        busys+=("$BT_LOAD")
        if [ -n "${BR_AFTER:-}" ]; then
            "$BR_AFTER" "$i" || return 1
        fi
    done
    bench_set "$prefix.command" "$(cat "$LOGS/$prefix-1.cmd")"
    bench_set "$prefix.wall_s" "$(bench_median "${walls[@]}")"
    bench_set "$prefix.user_s" "$(bench_median "${users[@]}")"
    bench_set "$prefix.sys_s" "$(bench_median "${syss[@]}")"
    bench_set "$prefix.cpu_s" "$(bench_median "${cpus[@]}")"
    bench_set "$prefix.rss_kib" "$(printf '%s\n' "${rsss[@]}" | sort -n | tail -n 1)"
    bench_set "$prefix.busy_before" "$(printf '%s\n' "${busys[@]}" | sort -g | tail -n 1)"
}

# Read a file once so that it is in the page cache.
bench_warm() {
    cat "$@" >/dev/null
}

# Resolve LEVEL and THREADS: set, they are passed to virtkeep (VK_LEVEL_ARGS,
# VK_THREAD_ARGS); unset, virtkeep runs at its defaults and LEVEL and
# THREADS become those defaults for the baseline and the report.
# LEVEL_HOW and THREADS_HOW say which it was.
bench_defaults() {
    VK_LEVEL_ARGS=()
    VK_THREAD_ARGS=()
    if [ -n "$LEVEL" ]; then
        VK_LEVEL_ARGS=(--compress-level "$LEVEL")
        LEVEL_HOW="--compress-level $LEVEL (VIRTKEEP_BENCH_LEVEL)"
    else
        LEVEL=$("$VK_BIN" backup --help 2>&1 |
            sed -n 's/.*--compress-level.*(default \([0-9][0-9]*\)).*/\1/p' | head -n 1)
        [ -n "$LEVEL" ] || vk_fail "cannot read the default level from 'virtkeep backup --help'"
        LEVEL_HOW="virtkeep's default (no --compress-level)"
    fi
    if [ -n "$THREADS" ]; then
        VK_THREAD_ARGS=(--threads "$THREADS")
        THREADS_HOW="--threads $THREADS (VIRTKEEP_BENCH_THREADS)"
    else
        THREADS=$(nproc)
        THREADS_HOW="virtkeep's default, the online CPUs (no --threads)"
    fi
}

bench_env_record() {
    bench_set env.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    bench_set env.host "$(uname -n)"
    bench_set env.kernel "$(uname -r)"
    bench_set env.cpus "$(nproc)"
    bench_set env.cpu_model "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    bench_set env.mem_kib "$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)"
    bench_set env.domain_type "$VK_DOMAIN_TYPE"
    bench_set env.qemu "$(qemu-img --version | head -n 1)"
    bench_set env.zstd "$(zstd --version)"
    bench_set env.virtnbdbackup "$(virtnbdbackup --version 2>&1 | tail -n 1)"
    bench_set env.virtkeep_commit "$(git -C "$abs_top_srcdir" describe --always --dirty 2>/dev/null ||
        echo unknown)"
    bench_set env.runs "$RUNS"
    bench_set env.level "$LEVEL"
    bench_set env.level_how "$LEVEL_HOW"
    bench_set env.threads "$THREADS"
    bench_set env.threads_how "$THREADS_HOW"
    bench_set env.vcpus_paused "${VIRTKEEP_BENCH_PAUSE:-1}"
    bench_set image.version "$IMG_VERSION"
}

# ---------------------------------------------------------------------------
# The report.

# bench_target NAME VALUE OP LIMIT UNIT WHAT: one row of the table.  OP is
# ">=", "<=" or "<".  An empty VALUE is "not measured".
bench_target() {
    local name=$1 value=$2 op=$3 limit=$4 unit=$5 what=$6 status
    if [ -z "$value" ]; then
        status=n/a
    elif awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN {
            ok = (op == ">=") ? v >= l : (op == "<=") ? v <= l : v < l; exit !ok }'; then
        status=PASS
    else
        status=MISS
        BENCH_MISSES=$((BENCH_MISSES + 1))
    fi
    bench_set "targets.$name.value" "${value:-null}"
    bench_set "targets.$name.target" "$op $limit"
    bench_set "targets.$name.status" "$status"
    printf '  %-44s %10s %-4s  %-8s %s\n' "$what" "${value:--}" "$unit" "$op $limit" \
        "$status"
}

# bench_ratio A B: A / B, or empty when either is missing.
bench_ratio() {
    if [ -z "$1" ] || [ -z "$2" ]; then
        return 0
    fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}

bench_mib() {
    [ -n "$1" ] && awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'
}

bench_row() {
    printf '  %-44s %s\n' "$1" "$2"
}

# Absolute figures: every measurement that was made.
bench_report_figures() {
    local k
    echo
    echo "Figures (median of $RUNS runs; level $LEVEL, $THREADS threads; $(nproc) CPUs," \
        "$VK_DOMAIN_TYPE)"
    echo "  virtkeep level:   $LEVEL_HOW; the zstd baseline: -$LEVEL"
    echo "  virtkeep threads: $THREADS_HOW; the zstd baseline: -T$THREADS"
    for k in full peer zstd inc64.full inc64.inc inc64.peer_full inc64.peer_inc restore \
        convert.direct convert chain.restore; do
        [ -n "$(bench_get "$k.wall_s")" ] || continue
        bench_row "$k" "$(bench_get "$k.wall_s") s wall, $(bench_get "$k.cpu_s") s CPU, peak RSS \
$(bench_mib "$(($(bench_get "$k.rss_kib") * 1024))") MiB, busy before $(bench_get "$k.busy_before")"
        bench_row "" "$(bench_get "$k.command")"
    done
    [ -z "$(bench_get full.size)" ] ||
        bench_row "virtkeep archive" "$(bench_get full.size) bytes ($(bench_mib \
            "$(bench_get full.size)") MiB)"
    [ -z "$(bench_get peer.size)" ] ||
        bench_row "virtnbdbackup output" "$(bench_get peer.size) bytes ($(bench_mib \
            "$(bench_get peer.size)") MiB)"
    [ -z "$(bench_get zstd.size)" ] ||
        bench_row "zstd output" "$(bench_get zstd.size) bytes ($(bench_mib \
            "$(bench_get zstd.size)") MiB)"
    bench_row "allocated data" "$(bench_get image.allocated_bytes) bytes"
}

bench_report_targets() {
    local full peer zstd
    full=$(bench_get full.wall_s)
    peer=$(bench_get peer.wall_s)
    zstd=$(bench_get zstd.wall_s)
    echo
    echo "Targets"
    bench_target speed_vs_virtnbdbackup "$(bench_ratio "$peer" "$full")" ">=" 3 x \
        "full backup speed vs virtnbdbackup -z"
    bench_target size_vs_virtnbdbackup "$(bench_ratio "$(bench_get full.size)" \
        "$(bench_get peer.size)")" "<=" 0.75 x "full backup size vs virtnbdbackup -z"
    bench_target time_vs_zstd "$(bench_ratio "$full" "$zstd")" "<=" 1.3 x \
        "full backup time vs zstd -$LEVEL -T$THREADS"
    bench_target inc64_wall "$(bench_get inc64.inc.wall_s)" "<" 2 s \
        "inc, 1 MiB dirty on 64 GiB, wall"
    bench_target full_peak_rss "$(bench_mib "$(bench_get full.rss_kib_bytes)")" "<" 256 MiB \
        "full backup peak RSS"
    bench_target restore_vs_convert_direct "$(bench_ratio "$(bench_get convert.direct.wall_s)" \
        "$(bench_get restore.wall_s)")" ">=" 0.9 x "full restore throughput vs convert -t none"
    bench_target chain_vs_full_restore "$(bench_ratio "$(bench_get chain.restore.wall_s)" \
        "$(bench_get restore.wall_s)")" "<=" 1.2 x "restore from 10-deep chain vs full alone"
    bench_target sealed_vs_full "$(bench_ratio "$(bench_get sealed.wall_s)" "$full")" "<=" 1.1 x \
        "sealed full backup time vs plain (OpenSSL AES-256-GCM: $(bench_mib \
        "$(bench_get openssl.aes_256_gcm_bytes_per_s)") MiB/s per core)"
}

# bench_runs_median PREFIX FIELD: the median of PREFIX.runs.*.FIELD, set as
# PREFIX.FIELD (nothing when no run recorded it).
bench_runs_median() {
    local v
    # shellcheck disable=SC2046
    v=$(bench_median $(awk -F'\t' -v p="$1.runs." -v f=".$2" 'index($1, p) == 1 &&
        substr($1, length($1) - length(f) + 1) == f { print $2 }' "$BENCH_RESULTS_TSV"))
    [ -z "$v" ] || bench_set "$1.$2" "$v"
}

# CPU seconds per GiB of allocated data: bench_per_gib SECONDS.
bench_per_gib() {
    local b
    b=$(bench_get image.allocated_bytes)
    [ -n "$1" ] && [ -n "$b" ] && awk -v s="$1" -v b="$b" \
        'BEGIN { if (b > 0) printf "%.2f", s / (b / 1073741824) }'
}

# CPU time is less sensitive than wall time to other jobs on the machine:
# shown beside the targets, not judged.  QEMU's share is its process's CPU
# time over the run (serving NBD; the vCPUs are paused, VIRTKEEP_BENCH_PAUSE).
bench_report_cpu() {
    local full peer zstd k
    bench_runs_median full qemu_cpu_s
    bench_runs_median peer qemu_cpu_s
    full=$(bench_get full.cpu_s)
    peer=$(bench_get peer.cpu_s)
    zstd=$(bench_get zstd.cpu_s)
    echo
    echo "CPU time (user+sys; not judged)"
    bench_row "virtkeep full / zstd CPU" "$(bench_ratio "$full" "$zstd") x ($full s / $zstd s)"
    bench_row "virtnbdbackup / virtkeep CPU" "$(bench_ratio "$peer" "$full") x ($peer s / $full s)"
    bench_set cpu_view.full_vs_zstd "$(bench_ratio "$full" "$zstd")"
    bench_set cpu_view.peer_vs_full "$(bench_ratio "$peer" "$full")"
    echo "  CPU-seconds per GiB of allocated data:"
    for k in full.cpu_s full.qemu_cpu_s peer.cpu_s peer.qemu_cpu_s zstd.cpu_s; do
        [ -n "$(bench_get "$k")" ] || continue
        bench_set "cpu_per_gib.${k%_s}" "$(bench_per_gib "$(bench_get "$k")")"
        bench_row "    $k" "$(bench_get "cpu_per_gib.${k%_s}") s/GiB ($(bench_get "$k") s)"
    done
}

# The TSV as nested JSON: dotted keys become objects, numbers stay numbers.
bench_write_json() {
    jq -Rn '
        reduce (inputs | split("\t")) as [$k, $v] ({};
            setpath($k | split(".");
                    if $v == "null" then null else ($v | tonumber? // $v) end))' \
        <"$BENCH_RESULTS_TSV" >"$RESULTS.tmp"
    mv "$RESULTS.tmp" "$RESULTS"
    echo
    echo "Results: $RESULTS"
    echo "Logs:    $LOGS"
}

bench_report() {
    local rss
    rss=$(bench_get full.rss_kib)
    [ -z "$rss" ] || bench_set full.rss_kib_bytes $((rss * 1024))
    bench_report_figures
    bench_report_targets
    bench_report_cpu
    if declare -F bench_report_profile >/dev/null; then bench_report_profile; fi
    bench_set summary.misses "$BENCH_MISSES"
    bench_set summary.errors "$BENCH_ERRORS"
    awk -F'\t' '$1 ~ /^notes\./ { print "note: " $2 }' "$BENCH_RESULTS_TSV"
    bench_write_json
    if [ "$BENCH_ERRORS" != 0 ]; then
        vk_log "$BENCH_ERRORS part(s) failed; see the errors above and $LOGS"
        exit 1
    fi
    if [ "${VIRTKEEP_BENCH_STRICT:-0}" = 1 ] && [ "$BENCH_MISSES" != 0 ]; then
        vk_log "$BENCH_MISSES target(s) missed (VIRTKEEP_BENCH_STRICT=1)"
        exit 1
    fi
}
