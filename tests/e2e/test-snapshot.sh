#!/bin/bash
# End-to-end test of `virtkeep snapshot` on a real libvirtd/QEMU domain:
#   1. create, write, revert: the data is back as it was;
#   2. create, write, delete (running: block commit + pivot; shut off:
#      qemu-img commit): the data is kept, the overlays and the snapshot
#      metadata are gone, the disk points at its base image again;
#   3. full backup, snapshot, write, incremental: a restore of the chain
#      equals the disk; again after the snapshot is deleted (bitmaps merged).
# Guest data is checked inside QEMU with HMP qemu-io "read -P" (the check
# itself is shown to fail on a wrong pattern), images with qemu-img.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-snap-$$-$RANDOM
vk_domain_create "$dom" 64M 1
vk_domain_start "$dom"
img=$(vk_domain_image "$dom" vda)
log=/var/log/libvirt/qemu/$dom.log

snap() {
    vk_vk snapshot "$@" >"$VK_SCRATCH/snap.out" 2>"$VK_SCRATCH/snap.err" ||
        vk_fail "virtkeep snapshot $*: $(cat "$VK_SCRATCH/snap.err")"
}

# Number of complete qemu-io reads in the domain log.
reads() {
    grep -Ec '^read ([0-9]+)/\1 bytes at offset' "$log" 2>/dev/null || true
}

reads_above() {
    [ "$(reads)" -gt "$1" ]
}

# guest_read PATTERN OFFSET LEN: 0 when the disk holds PATTERN there.
guest_read() {
    local before lines out
    before=$(reads)
    lines=$(wc -l <"$log")
    out=$("${VK_VIRSH[@]}" qemu-monitor-command "$dom" --hmp \
        "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"read -P $1 $2 $3\"" 2>&1) ||
        vk_fail "cannot read disk vda of '$dom': $out"
    vk_wait_for 10 reads_above "$before" || vk_fail "qemu-io did not report the read in '$log'"
    ! tail -n +"$((lines + 1))" "$log" | grep -q 'Pattern verification failed'
}

expect_data() {
    guest_read "$@" || vk_fail "disk vda of '$dom' does not hold $1 at $2 (+$3)"
}

source_of() { # [--inactive]
    "${VK_VIRSH[@]}" domblklist "$dom" --details "$@" | awk '$3 == "vda" { print $4 }'
}

snapshots() {
    "${VK_VIRSH[@]}" snapshot-list "$dom" --name | sed '/^$/d' | sort | tr '\n' ' '
}

# ---------------------------------------------------------------- 1. revert
vk_domain_write "$dom" vda 0xaa 0 1M
expect_data 0xaa 0 1M

snap create "$dom" s1 --json
vk_expect_eq "$(jq -r .name "$VK_SCRATCH/snap.out")" s1 "snapshot name"
vk_expect_eq "$(jq -r '.disks[0].overlay' "$VK_SCRATCH/snap.out")" "$img.s1" "overlay of s1"
vk_expect_eq "$(jq -r '.disks[0].base' "$VK_SCRATCH/snap.out")" "$img" "base of s1"
[ -f "$img.s1" ] || vk_fail "no overlay '$img.s1'"
vk_expect_eq "$(source_of)" "$img.s1" "live source after create"
vk_expect_eq "$(source_of --inactive)" "$img.s1" "persistent source after create"

vk_domain_write "$dom" vda 0xbb 0 1M
vk_domain_write "$dom" vda 0xcc 4M 1M
expect_data 0xbb 0 1M

snap revert "$dom" s1
vk_expect_eq "$("${VK_VIRSH[@]}" domstate "$dom")" running "state after revert"
vk_expect_eq "$(source_of)" "$img.s1" "source after revert"
expect_data 0xaa 0 1M
expect_data 0x00 4M 1M
snap list "$dom" --json
vk_expect_eq "$(jq -r '[.snapshots[].name] | join(",")' "$VK_SCRATCH/snap.out")" s1 "list"
vk_expect_eq "$(jq -r '.snapshots[0].current' "$VK_SCRATCH/snap.out")" true "s1 current"

# --quiesce without a guest agent: a clear error, and nothing is left behind.
rc=0
vk_vk snapshot create "$dom" q1 --quiesce >/dev/null 2>"$VK_SCRATCH/q.err" || rc=$?
vk_expect_eq "$rc" 1 "exit status of --quiesce without an agent"
vk_expect_grep "$VK_SCRATCH/q.err" "guest agent" "--quiesce without an agent"
[ ! -e "$img.s1.q1" ] || vk_fail "a failed --quiesce snapshot left '$img.s1.q1'"
vk_expect_eq "$(snapshots)" "s1 " "snapshots after a failed --quiesce"

# ---------------------------------------------------------------- 2. delete
snap create "$dom" s2
vk_expect_eq "$(source_of)" "$img.s1.s2" "source after creating s2"
vk_domain_write "$dom" vda 0xdd 8M 1M
snap delete "$dom" s2 # the active layer: commit + pivot
expect_data 0xdd 8M 1M
expect_data 0xaa 0 1M
[ ! -e "$img.s1.s2" ] || vk_fail "overlay '$img.s1.s2' still exists"
vk_expect_eq "$(snapshots)" "s1 " "snapshots after deleting s2"
vk_expect_eq "$(source_of)" "$img.s1" "source after deleting s2"
vk_expect_eq "$(source_of --inactive)" "$img.s1" "persistent source after deleting s2"

snap delete "$dom" s1
expect_data 0xdd 8M 1M
expect_data 0xaa 0 1M
[ ! -e "$img.s1" ] || vk_fail "overlay '$img.s1' still exists"
vk_expect_eq "$(snapshots)" "" "snapshots after deleting s1"
vk_expect_eq "$(source_of)" "$img" "source after deleting s1"
vk_expect_eq "$(source_of --inactive)" "$img" "persistent source after deleting s1"

# Shut off: the overlay is merged with qemu-img commit.
"${VK_VIRSH[@]}" destroy "$dom" >/dev/null
snap create "$dom" off1
[ -f "$img.off1" ] || vk_fail "no overlay '$img.off1' (shut-off domain)"
qemu-io -f qcow2 -c "write -P 0xee 12M 1M" "$img.off1" >/dev/null
snap delete "$dom" off1
[ ! -e "$img.off1" ] || vk_fail "overlay '$img.off1' still exists"
vk_expect_eq "$(source_of --inactive)" "$img" "source after deleting off1"
[ "$(qemu-img info --output=json "$img" | jq -r '.["backing-filename"] // "none"')" = none ] ||
    vk_fail "'$img' still has a backing file"
for check in "0xee 12M 1M" "0xdd 8M 1M" "0xaa 0 1M"; do
    out=$(qemu-io -r -f qcow2 -c "read -P $check" "$img")
    grep -q 'Pattern verification failed' <<<"$out" && vk_fail "'$img' lost $check: $out"
done
vk_domain_start "$dom"

# ---------------------------------------------------------------- 3. backups
# restore_check ID: restore backup ID and compare it with the live chain.
restore_check() {
    local dest=$VK_SCRATCH/restore-$1 top
    vk_vk restore "$dom" --backup "$1" --dest "$dest" --json >"$dest.json" 2>"$dest.err" ||
        vk_fail "restore of $1 failed: $(cat "$dest.err")"
    vk_domain_flush "$dom" vda
    top=$(source_of)
    qemu-img convert -U -f qcow2 -O raw "$top" "$VK_SCRATCH/live.raw"
    qemu-img compare -q -f qcow2 -F raw "$dest/vda.qcow2" "$VK_SCRATCH/live.raw" ||
        vk_fail "the restore of $1 differs from the disk ('$top')"
    rm -f "$VK_SCRATCH/live.raw"
}

vk_backup 0 "$dom" --level full
vk_bk_check_committed "$dom" full
snap create "$dom" s4
vk_domain_write "$dom" vda 0x5a 16M 2M
vk_backup 0 "$dom" --level inc
vk_bk_check_committed "$dom" inc
inc=$(vk_bk .backup)
vk_archive_check "$VK_BK_TARGET/$dom/$inc/vda.tar" "$((16 * M)):$((2 * M)):0x5a"
restore_check "$inc"

# After the snapshot is deleted, the checkpoint bitmaps were merged back.
snap delete "$dom" s4
vk_expect_eq "$(source_of)" "$img" "source after deleting s4"
vk_domain_write "$dom" vda 0x6b 24M 1M
vk_backup 0 "$dom" --level inc
vk_bk_check_committed "$dom" inc
inc=$(vk_bk .backup)
vk_archive_check "$VK_BK_TARGET/$dom/$inc/vda.tar" "$((24 * M)):$((1 * M)):0x6b"
restore_check "$inc"

# The read check can fail (last: vk_domain_write would see its message).
guest_read 0xbb 0 1M && vk_fail "the read check cannot tell 0xaa from 0xbb"
vk_log "PASS"
