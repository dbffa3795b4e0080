#!/bin/bash
# End-to-end test of the libvirt glue (src/virt*.c) against qemu:///system,
# through tests/e2e/virt-driver:
#   running domain: run directory owned by QEMU's user, checkpoint + pull
#     backup, read through the export, abort, socket/scratch cleanup;
#     an incremental whose dirty bitmap shows only what was written after
#     the checkpoint; foreign checkpoints listed but never deleted; metadata
#     delete + redefine; "Bitmap already exists" detected and cleaned up;
#     no guest agent for quiesce;
#   shut-off domain: offline checkpoint (qemu-img bitmap + REDEFINE),
#     qemu-nbd --bitmap, then start and an incremental pull backup from that
#     checkpoint; after kill -9 of QEMU the checkpoint is reported
#     inconsistent and discarded.
. "$abs_top_srcdir/tests/lib/harness.sh"

vk_start_libvirtd
vk_require_cmd nbdinfo qemu-io qemu-nbd
drv=$abs_top_builddir/tests/e2e/virt-driver
smoke=$abs_top_builddir/tests/e2e/smoke-nbd
M=$((1 << 20))

# dirty_extents SOCKET_OR_URI CONTEXT: "offset length" of each dirty extent.
dirty_extents() {
    nbdinfo --map="$2" "$1" | awk '$3 == 1 { print $1, $2 }' | tr '\n' ' ' | sed 's/ *$//'
}

dom_is_off() {
    "${VK_VIRSH[@]}" domstate "$1" | grep -q 'shut off'
}

expect_eq() {
    [ "$1" = "$2" ] || vk_fail "$3: expected '$2', got '$1'"
}

run_dir_new() {
    local d
    d=$("$drv" rundir-create "$VK_SCRATCH") || vk_fail "cannot create a run directory"
    vk_on_exit "'$drv' rundir-remove '$d' 2>/dev/null || true"
    if id libvirt-qemu >/dev/null 2>&1; then
        expect_eq "$(stat -c %U "$d")" libvirt-qemu "owner of the run directory"
    fi
    echo "$d"
}

# ---------------------------------------------------------------- running domain
dom=vk-virt-run-$$-$RANDOM
vk_domain_create "$dom" 256M 1
vk_domain_start "$dom"
vk_on_exit "'$drv' backup-abort '$dom' >/dev/null 2>&1 || true"
vk_domain_write "$dom" vda 0xcd 64M 1M

run=$(run_dir_new)
"$drv" backup-begin "$dom" "$run" "$run/backup.sock" virtkeep-1 - ||
    vk_fail "cannot begin a full pull backup"
vk_wait_for 10 test -S "$run/backup.sock" || vk_fail "no NBD socket in $run"
[ -e "$run/vda.scratch" ] || vk_fail "no scratch file in $run"
"$drv" backup-xml "$dom" | grep -q "socket='$run/backup.sock'" ||
    vk_fail "backup XML lacks the socket"
"$smoke" "$run/backup.sock" vda $((0xcd)) $((64 * M)) $M $((128 * M)) ||
    vk_fail "the export does not read back the pattern"
nbdinfo --map "nbd+unix:///vda?socket=$run/backup.sock" | grep -q data ||
    vk_fail "base:allocation shows no data"
expect_eq "$("$drv" backup-abort "$dom")" 0 "backup job after abort"
"$drv" rundir-remove "$run"
[ ! -e "$run" ] || vk_fail "the run directory '$run' is still there"
expect_eq "$("${VK_VIRSH[@]}" domstate "$dom" | head -1)" running "state after abort"
expect_eq "$("$drv" checkpoint-list "$dom")" virtkeep-1 "checkpoints after the full"

# Incremental: only what was written after virtkeep-1 is dirty.
vk_domain_write "$dom" vda 0xab 128M 1M
run=$(run_dir_new)
"$drv" backup-begin "$dom" "$run" "$run/b.sock" virtkeep-2 virtkeep-1 ||
    vk_fail "cannot begin an inc"
vk_wait_for 10 test -S "$run/b.sock" || vk_fail "no NBD socket for the inc"
expect_eq "$(dirty_extents "nbd+unix:///vda?socket=$run/b.sock" qemu:dirty-bitmap:backup-vda)" \
    "$((128 * M)) $M" "dirty extents of the running inc"
"$drv" backup-abort "$dom" >/dev/null
"$drv" rundir-remove "$run"

# Foreign checkpoints: listed with 'all', never deleted.
"${VK_VIRSH[@]}" checkpoint-create-as "$dom" foreign-1 >/dev/null
expect_eq "$("$drv" checkpoint-list "$dom" | tr '\n' ' ')" "virtkeep-1 virtkeep-2 " \
    "our checkpoints"
"$drv" checkpoint-list "$dom" all | grep -qx foreign-1 || vk_fail "foreign-1 is not listed"
if "$drv" checkpoint-delete "$dom" foreign-1 2>"$VK_SCRATCH/err"; then
    vk_fail "a foreign checkpoint was deleted"
fi
grep -q "does not belong to virtkeep" "$VK_SCRATCH/err" || vk_fail "$(cat "$VK_SCRATCH/err")"
"${VK_VIRSH[@]}" checkpoint-info "$dom" foreign-1 >/dev/null || vk_fail "foreign-1 is gone"
"${VK_VIRSH[@]}" checkpoint-delete "$dom" foreign-1 >/dev/null

# Metadata delete, then redefine from the saved XML (validated).
"$drv" checkpoint-xml "$dom" virtkeep-2 >"$VK_SCRATCH/cp2.xml"
"$drv" checkpoint-delete "$dom" virtkeep-2 metadata
expect_eq "$("$drv" checkpoint-list "$dom")" virtkeep-1 "after the metadata delete"
"$drv" checkpoint-redefine "$dom" "$VK_SCRATCH/cp2.xml" validate || vk_fail "cannot redefine"
expect_eq "$("$drv" checkpoint-current "$dom")" virtkeep-2 "current after redefine"
"$drv" checkpoint-check "$dom" virtkeep-2 || vk_fail "virtkeep-2 does not validate"

# Metadata gone but the bitmap left: a new checkpoint of that name fails with
# "Bitmap already exists" (exit 2: fall back to a full); discard cleans up.
"$drv" checkpoint-delete "$dom" virtkeep-2 metadata
run=$(run_dir_new)
rc=0
"$drv" backup-begin "$dom" "$run" "$run/c.sock" virtkeep-2 - 2>"$VK_SCRATCH/err" || rc=$?
expect_eq "$rc" 2 "exit status of a begin over a stale bitmap ($(cat "$VK_SCRATCH/err"))"
grep -q "bitmap-exists" "$VK_SCRATCH/err" || vk_fail "$(cat "$VK_SCRATCH/err")"
"$drv" checkpoint-discard "$dom" virtkeep-2 || vk_fail "cannot discard the stale bitmap"
"$drv" backup-begin "$dom" "$run" "$run/c.sock" virtkeep-2 - || vk_fail "begin after discard"
"$drv" backup-abort "$dom" >/dev/null
"$drv" rundir-remove "$run"

# Quiesce without a guest agent: exit 3 and a clear message.
rc=0
"$drv" freeze "$dom" 2>"$VK_SCRATCH/err" || rc=$?
expect_eq "$rc" 3 "freeze without agent ($(cat "$VK_SCRATCH/err"))"
grep -q "guest agent" "$VK_SCRATCH/err" || vk_fail "$(cat "$VK_SCRATCH/err")"

# ---------------------------------------------------------------- shut-off domain
off=vk-virt-off-$$-$RANDOM
vk_domain_create "$off" 256M 1
img=$VK_SCRATCH/images/$off-vda.qcow2
vk_on_exit "'$drv' backup-abort '$off' >/dev/null 2>&1 || true"
qemu-io -f qcow2 -c "write -P 0x11 0 1M" "$img" >/dev/null
"$drv" checkpoint-offline "$off" virtkeep-off1 >"$VK_SCRATCH/off1.xml" ||
    vk_fail "offline checkpoint"
grep -q "bitmap='virtkeep-off1'" "$VK_SCRATCH/off1.xml" || vk_fail "no bitmap in the checkpoint XML"
qemu-img info -U "$img" | grep -q "name: virtkeep-off1" || vk_fail "no bitmap in $img"
expect_eq "$("$drv" checkpoint-list "$off")" virtkeep-off1 "offline checkpoint listed"
"$drv" checkpoint-check "$off" virtkeep-off1 || vk_fail "offline checkpoint does not check"

# Written offline after the checkpoint: dirty through qemu-nbd --bitmap.
qemu-io -f qcow2 -c "write -P 0x22 32M 1M" "$img" >/dev/null
run=$(run_dir_new)
"$drv" nbd-map "$off" vda "$run" virtkeep-off1 >"$VK_SCRATCH/map"
expect_eq "$(awk '$3 == 1 { print $1, $2 }' "$VK_SCRATCH/map" | tr '\n' ' ' | sed 's/ *$//')" \
    "$((32 * M)) $M" "offline dirty extents"
[ -z "$(pgrep -f "qemu-nbd.*$run" || true)" ] || vk_fail "qemu-nbd still runs"

# Start it, write, and an incremental from the offline checkpoint.
vk_domain_start "$off"
vk_domain_write "$off" vda 0x33 96M 1M
"$drv" backup-begin "$off" "$run" "$run/b.sock" virtkeep-off2 virtkeep-off1 ||
    vk_fail "cannot begin an inc from the offline checkpoint"
vk_wait_for 10 test -S "$run/b.sock" || vk_fail "no NBD socket for the offline-based inc"
expect_eq "$(dirty_extents "nbd+unix:///vda?socket=$run/b.sock" qemu:dirty-bitmap:backup-vda)" \
    "$((32 * M)) $M $((96 * M)) $M" "dirty extents since the offline checkpoint"
"$drv" backup-abort "$off" >/dev/null
"$drv" rundir-remove "$run"

# kill -9 QEMU: the bitmaps stay in-use; check says "full", discard cleans.
pid=$(pgrep -f "qemu-system.*-name guest=$off," | head -1)
[ -n "$pid" ] || vk_fail "cannot find QEMU of '$off'"
kill -9 "$pid"
vk_wait_for 20 dom_is_off "$off" ||
    vk_fail "'$off' did not stop"
rc=0
"$drv" checkpoint-check "$off" virtkeep-off1 2>"$VK_SCRATCH/err" || rc=$?
expect_eq "$rc" 2 "check after the crash ($(cat "$VK_SCRATCH/err"))"
grep -q "inconsistent" "$VK_SCRATCH/err" || vk_fail "$(cat "$VK_SCRATCH/err")"
"$drv" checkpoint-discard "$off" virtkeep-off1 || vk_fail "cannot discard after the crash"
qemu-img info -U "$img" | grep -q "name: virtkeep-off1" && vk_fail "bitmap virtkeep-off1 is left"
expect_eq "$("$drv" checkpoint-list "$off")" virtkeep-off2 "checkpoints after the discard"

# Started again, QEMU loads the in-use bitmap of virtkeep-off2 as
# inconsistent: validation fails with error 109; discard removes it live.
vk_domain_start "$off"
rc=0
"$drv" checkpoint-check "$off" virtkeep-off2 2>"$VK_SCRATCH/err" || rc=$?
expect_eq "$rc" 2 "live check after the crash ($(cat "$VK_SCRATCH/err"))"
grep -q "\[inconsistent\]" "$VK_SCRATCH/err" || vk_fail "$(cat "$VK_SCRATCH/err")"
"$drv" checkpoint-discard "$off" virtkeep-off2 ||
    vk_fail "cannot discard a live inconsistent bitmap"
expect_eq "$("$drv" checkpoint-list "$off")" "" "checkpoints after the live discard"
"${VK_VIRSH[@]}" destroy "$off" >/dev/null
qemu-img info -U "$img" | grep -q "name: virtkeep-off2" && vk_fail "bitmap virtkeep-off2 is left"
vk_log "PASS"
