#!/bin/bash
# End-to-end: backups of a shut-off domain keep the chain (issue 3).
#   shut off: full through qemu-nbd, which leaves a virtkeep- checkpoint and
#     its bitmap in the qcow2;
#   running: an inc from that checkpoint holds exactly what was written;
#   shut off again, written offline with qemu-io: the next inc (qemu-nbd
#     --bitmap) holds exactly that region.
# Archive contents are checked with plain tar + zstd.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-bk-off-$$-$RANDOM
vk_domain_create "$dom" 256M 1
img=$(vk_domain_image "$dom" vda)

# checkpoint_is_there CHECKPOINT: libvirt lists it and, the domain being shut
# off, the qcow2 holds its bitmap.
checkpoint_is_there() {
    vk_has_line "$(vk_checkpoints "$dom")" "$1" || vk_fail "checkpoint '$1' is not defined"
    vk_has_line "$(vk_image_bitmaps "$img")" "$1" || vk_fail "'$img' has no bitmap '$1'"
}

# 1. Full of the shut-off domain.
vk_domain_is_off "$dom" || vk_fail "the new domain is not shut off"
vk_backup 0 "$dom" --level full
vk_bk_check_committed "$dom" full null
full=$(vk_bk .backup)
cp1=$(vk_bk .checkpoint)
case $cp1 in virtkeep-*) ;; *) vk_fail "the full's checkpoint is '$cp1'" ;; esac
vk_domain_is_off "$dom" || vk_fail "the backup started the domain"
checkpoint_is_there "$cp1"
vk_expect_eq "$(vk_bk '.disks | length')" 1 "disks of the full"
vk_expect_eq "$(vk_bk '.disks[0].data_bytes')" 0 "data bytes of the full of a blank disk"
vk_archive_check "$VK_BK_TARGET/$dom/$full/vda.tar"

# 2. Running: write, inc.
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0xcd 64M 1M
vk_backup 0 "$dom" --level inc
vk_bk_check_committed "$dom" inc "$full"
inc1=$(vk_bk .backup)
cp2=$(vk_bk .checkpoint)
[ "$cp2" != "$cp1" ] && [ "$cp2" != null ] || vk_fail "the inc's checkpoint is '$cp2'"
vk_expect_eq "$(vk_bk .reason)" null "reason of the running inc"
vk_expect_eq "$(vk_bk '.disks[0].data_bytes')" "$M" "data bytes of the running inc"
vk_archive_check "$VK_BK_TARGET/$dom/$inc1/vda.tar" "$((64 * M)):$M:0xcd"

# 3. Stop, write offline, inc again.
"${VK_VIRSH[@]}" destroy "$dom" >/dev/null
vk_wait_for 30 vk_domain_is_off "$dom" || vk_fail "the domain did not stop"
checkpoint_is_there "$cp2"
qemu-io -f qcow2 -c "write -P 0x5a 32M 1M" "$img" >/dev/null ||
    vk_fail "qemu-io cannot write to '$img'"
vk_backup 0 "$dom" --level inc
vk_bk_check_committed "$dom" inc "$inc1"
inc2=$(vk_bk .backup)
cp3=$(vk_bk .checkpoint)
[ "$cp3" != "$cp2" ] && [ "$cp3" != "$cp1" ] && [ "$cp3" != null ] ||
    vk_fail "the offline inc's checkpoint is '$cp3'"
vk_expect_eq "$(vk_bk .reason)" null "reason of the offline inc"
vk_expect_eq "$(vk_bk '.disks[0].data_bytes')" "$M" "data bytes of the offline inc"
vk_archive_check "$VK_BK_TARGET/$dom/$inc2/vda.tar" "$((32 * M)):$M:0x5a"
checkpoint_is_there "$cp3"
pgrep -f "qemu-nbd.*$img" >/dev/null && vk_fail "a qemu-nbd still serves '$img'"

# The catalog shows the chain, all committed.
vk_list "$dom"
for id in "$full" "$inc1" "$inc2"; do
    vk_expect_eq "$(vk_list_get "$id" status)" committed "status of $id in the list"
done
vk_expect_eq "$(vk_list_get "$inc2" parent)" "$inc1" "parent of $inc2 in the list"
vk_expect_eq "$(vk_list_get "$inc1" parent)" "$full" "parent of $inc1 in the list"
vk_log "PASS: full $full, inc $inc1 (running), inc $inc2 (offline)"
