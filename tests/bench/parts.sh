# shellcheck shell=bash
# virtkeep - the benchmark parts.  Sourced by run.sh.  A part that cannot
# run (a command that does not exist yet) leaves a note; a part whose
# command fails records an error and returns, so the others still run.

VK_CONF=$VK_SCRATCH/virtkeep.conf
VK_CATALOG=$VK_SCRATCH/catalog.db
printf '[catalog]\npath = %s\n' "$VK_CATALOG" >"$VK_CONF"
VK_CMD=("$VK_BIN" --config "$VK_CONF" --catalog "$VK_CATALOG")

# Does this virtkeep have the command $1?
bench_vk_has() {
    [ -x "$VK_BIN" ] && "$VK_BIN" help "$1" >/dev/null 2>&1
}

# bench_domain_setup NAME SIZE [IMAGE]: a running domain with one disk, a
# copy of IMAGE (or blank).
bench_domain_setup() {
    local name=$1 size=$2 image=${3:-}
    vk_domain_create "$name" "$size" 1
    if [ -n "$image" ]; then
        cp --sparse=always "$image" "$VK_SCRATCH/images/$name-vda.qcow2"
    fi
    vk_domain_start "$name"
    # The guest has no OS: its idle vCPU still costs 20-30% of a core under
    # nested KVM here, charged to whatever runs beside it.  Paused, QEMU
    # still serves the backup jobs and the HMP writes; the guest is quiet.
    if [ "${VIRTKEEP_BENCH_PAUSE:-1}" = 1 ]; then
        "${VK_VIRSH[@]}" suspend "$name" >/dev/null
    fi
}

# Delete virtnbdbackup's checkpoints of domain $1 (it refuses to run beside
# foreign checkpoints, and so virtkeep's must not see its ones either).
bench_peer_checkpoints_delete() {
    local cp
    for cp in $("${VK_VIRSH[@]}" checkpoint-list "$1" --name 2>/dev/null | tac); do
        case "$cp" in
        virtnbdbackup*) "${VK_VIRSH[@]}" checkpoint-delete "$1" "$cp" >/dev/null ;;
        esac
    done
}

# The options of every virtkeep backup here: none that changes how it
# compresses unless VIRTKEEP_BENCH_LEVEL/THREADS ask (bench_defaults).
bench_vk_backup_args() {
    echo --json "${VK_THREAD_ARGS[@]}" "${VK_LEVEL_ARGS[@]}"
}

# Check a backup's --json output: level $2, and record its counters.
bench_vk_json_check() {
    local json=$1 level=$2 prefix=$3 got
    got=$(jq -r .level "$json" 2>/dev/null) || {
        bench_error "$prefix: virtkeep printed no valid JSON ($json)"
        return 1
    }
    if [ "$got" != "$level" ]; then
        bench_error "$prefix: virtkeep made a '$got' backup, not '$level' ($json)"
        return 1
    fi
    bench_set "$prefix.backup_id" "$(jq -r .backup "$json")"
    bench_set "$prefix.data_bytes" "$(jq '[.disks[].data_bytes] | add' "$json")"
    bench_set "$prefix.zero_bytes" "$(jq '[.disks[].zero_bytes] | add' "$json")"
    bench_set "$prefix.stored_bytes" "$(jq '[.disks[].stored_bytes] | add' "$json")"
    bench_set "$prefix.chunks" "$(jq '[.disks[].chunks] | add' "$json")"
}

# CPU seconds (user + system) that the QEMU process of domain $1 has used.
bench_qemu_cpu() {
    local pid
    pid=$(cat "/var/run/libvirt/qemu/$1.pid" 2>/dev/null) || return 0
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
        "/proc/$pid/stat"
}

# bench_qemu_mark / bench_qemu_record PREFIX RUN: QEMU's CPU seconds over one
# run, recorded as PREFIX.runs.RUN.qemu_cpu_s.
bench_qemu_mark() {
    BENCH_QEMU_T0=$(bench_qemu_cpu "$BENCH_DOM")
}

bench_qemu_record() {
    bench_set "$1.runs.$2.qemu_cpu_s" "$(awk -v a="$BENCH_QEMU_T0" \
        -v b="$(bench_qemu_cpu "$BENCH_DOM")" 'BEGIN { printf "%.2f", b - a }')"
}

# ---------------------------------------------------------------------------
# 1. virtkeep full backup.

bench_full_before() {
    rm -rf "$FULL_TARGET"
    mkdir -p "$FULL_TARGET"
    bench_warm "$VK_SCRATCH/images/$BENCH_DOM-vda.qcow2"
    bench_qemu_mark
}

bench_full_after() {
    local tar size
    bench_qemu_record full "$1"
    bench_vk_json_check "$LOGS/full-$1.out" full "full.runs.$1" || return 1
    tar=$(find "$FULL_TARGET/$BENCH_DOM" -name vda.tar)
    [ -n "$tar" ] || {
        bench_error "full: no $BENCH_DOM/*/vda.tar on the target"
        return 1
    }
    size=$(stat -c %s "$tar")
    bench_set "full.runs.$1.size" "$size"
    bench_set full.size "$size"
    bench_set full.target_bytes "$(du -sb "$FULL_TARGET" | cut -f1)"
    FULL_ID=$(jq -r .backup "$LOGS/full-$1.out")
}

bench_run_full() {
    BENCH_DOM=$1
    FULL_ID=
    FULL_TARGET=$VK_SCRATCH/vk-full
    if ! bench_vk_has backup; then
        bench_note "virtkeep has no 'backup' command yet: full, inc64 and restore not measured"
        return 0
    fi
    local BR_BEFORE=bench_full_before BR_AFTER=bench_full_after
    # shellcheck disable=SC2046
    bench_runs full "$RUNS" "${VK_CMD[@]}" backup "$BENCH_DOM" --target "file://$FULL_TARGET" \
        --level full $(bench_vk_backup_args) || {
        FULL_ID=
        bench_error "the virtkeep full backup failed (logs in $LOGS)"
        return 0
    }
}

# ---------------------------------------------------------------------------
# 1b. The same full backup sealed (encryption = aes-256-gcm, issue 16), and
# OpenSSL's own AES-256-GCM speed on one core for comparison.

bench_sealed_before() {
    rm -rf "$SEALED_TARGET"
    mkdir -p "$SEALED_TARGET"
    bench_warm "$VK_SCRATCH/images/$BENCH_DOM-vda.qcow2"
    bench_qemu_mark
}

bench_sealed_after() {
    bench_qemu_record sealed "$1"
    bench_vk_json_check "$LOGS/sealed-$1.out" full "sealed.runs.$1" || return 1
    bench_set sealed.size "$(find "$SEALED_TARGET" -name vda.tar -exec stat -c %s {} +)"
}

# OpenSSL's AES-256-GCM throughput on 4 MiB buffers (bytes per second).
bench_openssl_gcm() {
    openssl speed -seconds 3 -bytes 4194304 -evp aes-256-gcm 2>/dev/null |
        awk '$1 == "AES-256-GCM" { sub(/k$/, "", $2); printf "%.0f", $2 * 1000 }'
}

bench_run_sealed() {
    BENCH_DOM=$1
    SEALED_TARGET=$VK_SCRATCH/vk-sealed
    if ! bench_vk_has key; then
        bench_note "virtkeep has no 'key' command: sealed backup not measured"
        return 0
    fi
    local BR_BEFORE=bench_sealed_before BR_AFTER=bench_sealed_after keyring=$VK_SCRATCH/keyring
    [ -f "$keyring" ] || "$VK_BIN" key create --keyring "$keyring" >/dev/null
    printf '\n[target sealed]\nurl = file://%s\nencryption = aes-256-gcm\n' "$SEALED_TARGET" \
        >>"$VK_CONF"
    printf 'encryption_key_file = %s\n' "$keyring" >>"$VK_CONF"
    bench_set openssl.aes_256_gcm_bytes_per_s "$(bench_openssl_gcm)"
    # shellcheck disable=SC2046
    bench_runs sealed "$RUNS" "${VK_CMD[@]}" backup "$BENCH_DOM" --target sealed \
        --level full $(bench_vk_backup_args) ||
        bench_error "the sealed full backup failed (logs in $LOGS)"
}

# ---------------------------------------------------------------------------
# 2. virtnbdbackup -l full -z of the same domain.

bench_peer_before() {
    rm -rf "$PEER_OUT"
    bench_warm "$VK_SCRATCH/images/$BENCH_DOM-vda.qcow2"
    bench_qemu_mark
}

bench_peer_after() {
    local data=$PEER_OUT/vda.full.data
    bench_qemu_record peer "$1"
    [ -f "$data" ] || {
        bench_error "peer: virtnbdbackup wrote no '$data'"
        return 1
    }
    bench_set "peer.runs.$1.size" "$(stat -c %s "$data")"
    bench_set peer.size "$(stat -c %s "$data")"
    bench_set peer.output_bytes "$(du -sb "$PEER_OUT" | cut -f1)"
}

bench_run_peer() {
    BENCH_DOM=$1
    PEER_OUT=$VK_SCRATCH/vnb
    local BR_BEFORE=bench_peer_before BR_AFTER=bench_peer_after
    bench_set peer.compression "lz4 frame, level 2 (virtnbdbackup -z default), one thread per disk"
    bench_runs peer "$RUNS" virtnbdbackup -d "$BENCH_DOM" -l full -z -n \
        -o "$PEER_OUT" || bench_error "virtnbdbackup failed (logs in $LOGS)"
    rm -rf "$PEER_OUT"
    bench_peer_checkpoints_delete "$BENCH_DOM"
}

# ---------------------------------------------------------------------------
# 3. zstd over the allocated data alone, from the page cache.

bench_run_zstd() {
    local f=$IMG/alloc.raw
    bench_warm "$f"
    bench_warm "$f"
    BT_STDOUT=/dev/null bench_runs zstd "$RUNS" zstd "-$LEVEL" "-T$THREADS" -q -c "$f" ||
        bench_error "zstd failed"
    bench_set zstd.command "zstd -$LEVEL -T$THREADS -q -c $f > /dev/null"
    bench_set zstd.size "$(zstd "-$LEVEL" "-T$THREADS" -q -c "$f" | wc -c)"
    bench_set zstd.input_bytes "$(stat -c %s "$f")"
}

# ---------------------------------------------------------------------------
# 4. Incremental with 1 MiB dirty on a 64 GiB virtual disk.

bench_inc64_before() {
    # A fresh 1 MiB for each run, away from the data of the full.
    vk_domain_write vkbench64 vda 0xcd "$((40960 + 64 * $1))M" 1M
}

bench_inc64_after() {
    bench_vk_json_check "$LOGS/inc64.inc-$1.out" inc "inc64.inc.runs.$1" || return 1
    [ "$(bench_get "inc64.inc.runs.$1.data_bytes")" = "$MIB" ] ||
        bench_note "inc64 run $1 read $(bench_get "inc64.inc.runs.$1.data_bytes") bytes of data, not 1 MiB"
}

bench_inc64_peer() {
    local out=$VK_SCRATCH/vnb64
    bench_runs inc64.peer_full 1 virtnbdbackup -d vkbench64 -l full -z -n -o "$out" || return 1
    vk_domain_write vkbench64 vda 0xce 50G 1M
    bench_runs inc64.peer_inc 1 virtnbdbackup -d vkbench64 -l inc -z -n -o "$out" || return 1
    rm -rf "$out"
}

bench_run_inc64() {
    local target=file://$VK_SCRATCH/vk-inc64
    if ! bench_vk_has backup; then
        bench_note "virtkeep has no 'backup' command yet: inc64 not measured"
        return 0
    fi
    mkdir -p "$VK_SCRATCH/vk-inc64"
    bench_domain_setup vkbench64 64G
    # Some data for the full to carry (the rest of the disk is unallocated).
    vk_domain_write vkbench64 vda 0xab 1G 16M
    if bench_part peer; then
        bench_inc64_peer || bench_error "virtnbdbackup on the 64 GiB disk failed"
        bench_peer_checkpoints_delete vkbench64
    fi
    # shellcheck disable=SC2046
    bench_runs inc64.full 1 "${VK_CMD[@]}" backup vkbench64 --target "$target" --level full \
        $(bench_vk_backup_args) || {
        bench_error "the virtkeep full backup of the 64 GiB disk failed"
        return 0
    }
    bench_vk_json_check "$LOGS/inc64.full-1.out" full inc64.full || return 0
    local BR_BEFORE=bench_inc64_before BR_AFTER=bench_inc64_after
    # shellcheck disable=SC2046
    bench_runs inc64.inc "$RUNS" "${VK_CMD[@]}" backup vkbench64 --target "$target" --level inc \
        $(bench_vk_backup_args) || bench_error "the virtkeep incremental of the 64 GiB disk failed"
}

# ---------------------------------------------------------------------------
# 5. Restore: full restore against qemu-img convert; chain against full.

bench_restore_after() {
    local dest=$VK_SCRATCH/restore/vda.qcow2
    qemu-img compare -q -U -F qcow2 "$RESTORE_REF" "$dest" || {
        bench_error "the restored image of run $1 differs from '$RESTORE_REF'"
        return 1
    }
    bench_set "$RESTORE_PREFIX.runs.$1.identical" true
}

bench_restore_before() {
    rm -rf "$VK_SCRATCH/restore"
    bench_warm "$FULL_TARGET/$BENCH_DOM"/*/*
}

# bench_restore PREFIX BACKUP_ID REFERENCE
bench_restore() {
    RESTORE_PREFIX=$1 RESTORE_REF=$3
    local BR_BEFORE=bench_restore_before BR_AFTER=bench_restore_after
    bench_runs "$1" "$RUNS" "${VK_CMD[@]}" restore "$BENCH_DOM" --backup "$2" \
        --dest "$VK_SCRATCH/restore" --json || {
        bench_error "virtkeep restore --backup $2 failed or restored wrong bytes (logs in $LOGS)"
        return 1
    }
    rm -rf "$VK_SCRATCH/restore"
}

bench_convert_before() {
    rm -f "$VK_SCRATCH/convert.qcow2"
    bench_warm "$IMG/disk.raw"
}

# qemu-img convert of the same data (raw, from the page cache) to a fresh
# qcow2 beside the restore's: with -t none (O_DIRECT, the fast way to write
# a fresh image here: convert.direct, the target) and at its default cache
# mode (convert, shown).  The restore is durable when it says done (qemu-nbd
# with cache=none, then fsync); convert -t none writes around the page cache.
bench_run_convert() {
    local BR_BEFORE=bench_convert_before
    bench_runs convert.direct "$RUNS" qemu-img convert -t none -f raw -O qcow2 "$IMG/disk.raw" \
        "$VK_SCRATCH/convert.qcow2" || bench_error "qemu-img convert -t none failed"
    bench_runs convert "$RUNS" qemu-img convert -f raw -O qcow2 "$IMG/disk.raw" \
        "$VK_SCRATCH/convert.qcow2" || bench_error "qemu-img convert failed"
    rm -f "$VK_SCRATCH/convert.qcow2"
}

# The three regions the chain rewrites, and the pattern of the K-th write.
BENCH_CHAIN_REGIONS=("256M 32M" "2G 32M" "3968M 32M")
bench_chain_pattern() {
    echo "0x$(($1 + 10 * ($2 + 1)))"
}

# What the disk holds after the last write of the chain: the benchmark
# image with the regions written by qemu-io offline.  (The live image can't
# serve as the reference: QEMU holds qcow2 metadata it has not flushed.)
bench_chain_reference() {
    local ref=$1 k=$2 r args=()
    cp --sparse=always "$IMG/disk.qcow2" "$ref"
    for r in "${!BENCH_CHAIN_REGIONS[@]}"; do
        args+=(-c "write -P $(bench_chain_pattern "$k" "$r") ${BENCH_CHAIN_REGIONS[r]}")
    done
    qemu-io -f qcow2 "${args[@]}" "$ref" >/dev/null
}

# Ten incrementals rewriting the same three regions, then a restore of the
# last one, checked against its reference.
bench_run_chain() {
    local k r id='' ref=$VK_SCRATCH/chain-ref.qcow2
    for ((k = 1; k <= 10; k++)); do
        for r in "${!BENCH_CHAIN_REGIONS[@]}"; do
            # shellcheck disable=SC2086
            vk_domain_write "$BENCH_DOM" vda "$(bench_chain_pattern "$k" "$r")" \
                ${BENCH_CHAIN_REGIONS[r]}
        done
        # shellcheck disable=SC2046
        bench_time "chain.inc-$k" "${VK_CMD[@]}" backup "$BENCH_DOM" \
            --target "file://$FULL_TARGET" --level inc $(bench_vk_backup_args) || {
            bench_error "incremental $k of the chain failed"
            return 0
        }
        bench_vk_json_check "$LOGS/chain.inc-$k.out" inc "chain.inc.$k" || return 0
        id=$(jq -r .backup "$LOGS/chain.inc-$k.out")
    done
    bench_chain_reference "$ref" 10
    bench_restore chain.restore "$id" "$ref" || return 0
    rm -f "$ref"
}

bench_run_restore() {
    BENCH_DOM=$1
    if ! bench_vk_has restore; then
        bench_note "virtkeep has no 'restore' command yet: restore not measured"
        return 0
    fi
    if [ -z "${FULL_ID:-}" ]; then
        bench_note "no full backup to restore (part 'full' did not run or failed)"
        return 0
    fi
    bench_restore restore "$FULL_ID" "$IMG/disk.qcow2" || return 0
    if bench_part profile; then bench_run_profile_restore "$FULL_ID"; fi
    bench_run_convert
    bench_run_chain
}
