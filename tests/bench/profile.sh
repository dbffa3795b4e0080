# shellcheck shell=bash
# virtkeep - part "profile" of make bench: where a full backup's CPU goes.
# Sourced by run.sh after parts.sh.
#
# One more full backup of the benchmark domain, at the same defaults, and
# one more restore of it (with part "restore"), under `perf record -F 999`
# (all threads and children, user and kernel).  The samples are put
# in classes by symbol and library:
#   compression  libzstd (ZSTD_*, HUF_*, FSE_*)
#   digests      SHA-256 (libcrypto: a backup uses it for nothing else; its
#                symbols are stripped)
#   copies       memcpy/memmove/memset
#   nbd          libnbd
#   kernel       the kernel (reads of the NBD socket, copies into the target
#                file's page cache: the zstd baseline writes to /dev/null)
#   virtkeep     virtkeep's own code
#   qemu         qemu-nbd (a restore writes through it)
#   other        the rest (libc, libarchive, ...)
# and each class is reported as a share of virtkeep's samples and as
# CPU-seconds per GiB of allocated data (the share of the run's CPU time).
# The top symbols go to $LOGS/profile.top.txt.  Not timed: perf slows the
# run; the figures of part "full" stand.

PROFILE_CLASSES="compression digests copies nbd kernel virtkeep qemu other"

# The report as "PERCENT<TAB>DSO<TAB>SYMBOL" lines.
profile_flat() {
    perf report -i "$1" --stdio --no-children --sort dso,sym --percent-limit 0 \
        --field-separator=$'\t' 2>/dev/null |
        awk -F'\t' '!/^#/ && NF >= 3 { p = $1; sub(/%/, "", p); gsub(/ /, "", p);
                                        print p "\t" $2 "\t" $3 }'
}

profile_classify() {
    awk -F'\t' '
        { dso = $2; sym = $3; c = "other" }
        dso ~ /libzstd/ || sym ~ /ZSTD_|HUF_|FSE_/ { c = "compression" }
        c == "other" && (dso ~ /libcrypto/ || sym ~ /[Ss][Hh][Aa]256/) { c = "digests" }
        c == "other" && sym ~ /mem(cpy|move|set)/ { c = "copies" }
        c == "other" && dso ~ /libnbd/ { c = "nbd" }
        c == "other" && (dso ~ /kernel/ || sym ~ /\[k\]/) { c = "kernel" }
        c == "other" && dso ~ /virtkeep/ { c = "virtkeep" }
        c == "other" && dso ~ /qemu/ { c = "qemu" }
        { share[c] += $1 }
        END { for (c in share) printf "%s\t%.1f\n", c, share[c] }'
}

profile_usable() {
    command -v perf >/dev/null && perf record -q -o "$LOGS/perf-check.data" true >/dev/null 2>&1
    local rc=$?
    rm -f "$LOGS/perf-check.data"
    return $rc
}

# profile_record NAME CMD...: run CMD under perf (timed as NAME, not judged)
# and record its classes under NAME.share.*, its CPU as NAME.cpu_s and its
# top symbols in $LOGS/NAME.top.txt.
profile_record() {
    local name=$1 data=$LOGS/$1.perf.data c share
    shift
    bench_time "$name" perf record -q -F 999 -o "$data" -- "$@" || return 1
    bench_set "$name.cpu_s" "$(awk -v u="$BT_USER" -v s="$BT_SYS" 'BEGIN { printf "%.2f", u + s }')"
    bench_set "$name.command" "perf record -F 999 -- $(bench_quote "$@")"
    profile_flat "$data" >"$LOGS/$name.flat.tsv"
    sort -t$'\t' -k1,1gr "$LOGS/$name.flat.tsv" | awk 'NR <= 25' >"$LOGS/$name.top.txt"
    while IFS=$'\t' read -r c share; do
        bench_set "$name.share.$c" "$share"
    done < <(profile_classify <"$LOGS/$name.flat.tsv")
    rm -f "$data"
}

bench_run_profile() {
    BENCH_DOM=$1
    local dir=$VK_SCRATCH/vk-profile before cp
    if ! profile_usable; then
        bench_note "profile not run: perf is missing or cannot record here"
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    bench_warm "$VK_SCRATCH/images/$BENCH_DOM-vda.qcow2"
    # A catalog of its own, and its checkpoint deleted after: the chain of
    # part "restore" must not grow on this backup.
    before=$("${VK_VIRSH[@]}" checkpoint-list "$BENCH_DOM" --name | sort)
    printf '[catalog]\npath = %s\n' "$dir.db" >"$dir.conf"
    # shellcheck disable=SC2046
    profile_record profile "$VK_BIN" --config "$dir.conf" --catalog "$dir.db" backup \
        "$BENCH_DOM" --target "file://$dir" --level full $(bench_vk_backup_args) ||
        bench_error "the profiled full backup failed (logs in $LOGS)"
    for cp in $(comm -13 <(echo "$before") <("${VK_VIRSH[@]}" checkpoint-list "$BENCH_DOM" \
        --name | sort)); do
        "${VK_VIRSH[@]}" checkpoint-delete "$BENCH_DOM" "$cp" >/dev/null
    done
    rm -rf "$dir" "$dir.db" "$dir.conf"
}

# One more restore of backup $1 (part "restore" calls it), profiled.
bench_run_profile_restore() {
    profile_usable || return 0
    rm -rf "$VK_SCRATCH/restore"
    bench_warm "$FULL_TARGET/$BENCH_DOM"/*/*
    profile_record profile_restore "${VK_CMD[@]}" restore "$BENCH_DOM" --backup "$1" \
        --dest "$VK_SCRATCH/restore" --json ||
        bench_error "the profiled restore failed (logs in $LOGS)"
    rm -rf "$VK_SCRATCH/restore"
}

# profile_report NAME WHAT
profile_report() {
    local c share name=$1
    [ -n "$(bench_get "$name.cpu_s")" ] || return 0
    echo
    echo "Profile of $2 (perf, $(bench_get "$name.cpu_s") s CPU, children included; not judged)"
    for c in $PROFILE_CLASSES; do
        share=$(bench_get "$name.share.$c")
        [ -n "$share" ] || continue
        bench_set "$name.cpu_per_gib.$c" "$(bench_per_gib "$(awk -v s="$share" \
            -v c="$(bench_get "$name.cpu_s")" 'BEGIN { printf "%.3f", s / 100 * c }')")"
        bench_row "    $c" "$share % ($(bench_get "$name.cpu_per_gib.$c") CPU-s/GiB)"
    done
    bench_row "    top symbols" "$LOGS/$name.top.txt"
}

bench_report_profile() {
    profile_report profile "one full backup"
    profile_report profile_restore "one full restore"
}
