#!/bin/bash
# End-to-end: a transient domain (virsh create, never defined) whose
# checkpoint metadata is lost, as after a daemon restart (issue 3).  The
# engine redefines the checkpoint from the catalog and the next inc still
# chains, holding only what was written since the full.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-bk-trans-$$-$RANDOM
mkdir -p "$VK_SCRATCH/images"
chmod 0755 "$VK_SCRATCH/images"
img=$(vk_domain_image "$dom" vda)
qemu-img create -q -f qcow2 "$img" 256M
vk_domain_xml "$dom" 256M 1 "$VK_SCRATCH/images" >"$VK_SCRATCH/$dom.xml"
"${VK_VIRSH[@]}" create "$VK_SCRATCH/$dom.xml" >/dev/null || vk_fail "cannot create '$dom'"
vk_on_exit "\"\${VK_VIRSH[@]}\" destroy '$dom' >/dev/null 2>&1; rm -f '/var/log/libvirt/qemu/$dom.log'"
grep -Eq '^Persistent: *no' <<<"$("${VK_VIRSH[@]}" dominfo "$dom")" || vk_fail "'$dom' is persistent"

vk_domain_write "$dom" vda 0xcd 64M 1M
vk_backup 0 "$dom" --level full
vk_bk_check_committed "$dom" full null
full=$(vk_bk .backup)
cp=$(vk_bk .checkpoint)
vk_expect_eq "$(vk_checkpoints "$dom")" "$cp" "checkpoints after the full"
vk_archive_check "$VK_BK_TARGET/$dom/$full/vda.tar" "$((64 * M)):$M:0xcd"

# Lose the checkpoint metadata; the bitmap stays in QEMU.
"${VK_VIRSH[@]}" checkpoint-delete "$dom" "$cp" --metadata >/dev/null
vk_expect_eq "$(vk_checkpoints "$dom")" "" "checkpoints after the metadata delete"
vk_has_line "$(vk_qemu_bitmaps "$dom")" "$cp" || vk_fail "QEMU lost the bitmap '$cp' too"

vk_domain_write "$dom" vda 0xab 100M 2M
vk_backup 0 "$dom" --level inc
vk_bk_check_committed "$dom" inc "$full"
inc=$(vk_bk .backup)
vk_expect_eq "$(vk_bk .reason)" null "reason of the inc"
vk_expect_eq "$(vk_bk '.disks[0].data_bytes')" $((2 * M)) "data bytes of the inc"
vk_archive_check "$VK_BK_TARGET/$dom/$inc/vda.tar" "$((100 * M)):$((2 * M)):0xab"
cp2=$(vk_bk .checkpoint)
vk_has_line "$(vk_checkpoints "$dom")" "$cp" || vk_fail "checkpoint '$cp' was not redefined"
vk_has_line "$(vk_checkpoints "$dom")" "$cp2" || vk_fail "the inc's checkpoint '$cp2' is missing"

# And once more, to see the chain continue from the inc.
vk_domain_write "$dom" vda 0x77 4M 1M
vk_backup 0 "$dom" --level auto
vk_bk_check_committed "$dom" inc "$inc"
vk_archive_check "$VK_BK_TARGET/$dom/$(vk_bk .backup)/vda.tar" "$((4 * M)):$M:0x77"
vk_log "PASS: $full, metadata lost, $inc chained"
