# shellcheck shell=bash
# virtkeep - part "profile" of make bench: where a full backup's CPU goes.
# Sourced by run.sh after parts.sh.
#
# One more full backup of the benchmark domain, at the same defaults, under
# `perf record -F 999` (all threads, user and kernel).  The samples are put
# in classes by symbol and library:
#   compression  libzstd (ZSTD_*, HUF_*, FSE_*)
#   digests      SHA-256 (libcrypto: a backup uses it for nothing else; its
#                symbols are stripped)
#   copies       memcpy/memmove/memset
#   nbd          libnbd
#   kernel       the kernel (reads of the NBD socket, copies into the target
#                file's page cache: the zstd baseline writes to /dev/null)
#   virtkeep     virtkeep's own code
#   other        the rest (libc, libarchive, ...)
# and each class is reported as a share of virtkeep's samples and as
# CPU-seconds per GiB of allocated data (the share of the run's CPU time).
# The top symbols go to $LOGS/profile.top.txt.  Not timed: perf slows the
# run; the figures of part "full" stand.

PROFILE_CLASSES="compression digests copies nbd kernel virtkeep other"

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
        { share[c] += $1 }
        END { for (c in share) printf "%s\t%.1f\n", c, share[c] }'
}

bench_run_profile() {
    BENCH_DOM=$1
    local data=$LOGS/profile.perf.data dir=$VK_SCRATCH/vk-profile cpu c share before cp
    if ! command -v perf >/dev/null || ! perf record -q -o "$LOGS/perf-check.data" true \
        >/dev/null 2>&1; then
        bench_note "profile not run: perf is missing or cannot record here"
        return 0
    fi
    rm -f "$LOGS/perf-check.data"
    rm -rf "$dir"
    mkdir -p "$dir"
    bench_warm "$VK_SCRATCH/images/$BENCH_DOM-vda.qcow2"
    # A catalog of its own, and its checkpoint deleted after: the chain of
    # part "restore" must not grow on this backup.
    before=$("${VK_VIRSH[@]}" checkpoint-list "$BENCH_DOM" --name | sort)
    printf '[catalog]\npath = %s\n' "$dir.db" >"$dir.conf"
    # shellcheck disable=SC2046
    bench_time profile perf record -q -F 999 -o "$data" -- "$VK_BIN" --config "$dir.conf" \
        --catalog "$dir.db" backup "$BENCH_DOM" --target "file://$dir" --level full \
        $(bench_vk_backup_args) || {
        bench_error "the profiled full backup failed (logs in $LOGS)"
        return 0
    }
    for cp in $(comm -13 <(echo "$before") <("${VK_VIRSH[@]}" checkpoint-list "$BENCH_DOM" \
        --name | sort)); do
        "${VK_VIRSH[@]}" checkpoint-delete "$BENCH_DOM" "$cp" >/dev/null
    done
    rm -rf "$dir" "$dir.db" "$dir.conf"
    cpu=$(awk -v u="$BT_USER" -v s="$BT_SYS" 'BEGIN { printf "%.2f", u + s }')
    bench_set profile.cpu_s "$cpu"
    bench_set profile.command "perf record -F 999 -- $(cat "$LOGS/profile.cmd")"
    profile_flat "$data" >"$LOGS/profile.flat.tsv"
    sort -t$'\t' -k1,1gr "$LOGS/profile.flat.tsv" | awk 'NR <= 25' >"$LOGS/profile.top.txt"
    while IFS=$'\t' read -r c share; do
        bench_set "profile.share.$c" "$share"
    done < <(profile_classify <"$LOGS/profile.flat.tsv")
    rm -f "$data"
}

bench_report_profile() {
    local c share
    [ -n "$(bench_get profile.cpu_s)" ] || return 0
    echo
    echo "Profile of one full backup (perf, $(bench_get profile.cpu_s) s CPU; not judged)"
    for c in $PROFILE_CLASSES; do
        share=$(bench_get "profile.share.$c")
        [ -n "$share" ] || continue
        bench_set "profile.cpu_per_gib.$c" "$(bench_per_gib "$(awk -v s="$share" \
            -v c="$(bench_get profile.cpu_s)" 'BEGIN { printf "%.3f", s / 100 * c }')")"
        bench_row "    $c" "$share % ($(bench_get "profile.cpu_per_gib.$c") CPU-s/GiB)"
    done
    bench_row "    top symbols" "$LOGS/profile.top.txt"
}
