#!/bin/bash
# End-to-end: QEMU killed with kill -9 between two backups (issue 3).
# The bitmaps are left in-use (inconsistent), so the next `auto` must be a
# full, say why in one line on stderr and in the JSON's reason, clean up the
# broken checkpoint, and keep the older backups listed as committed.  The
# chain then goes on from the new full.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-bk-crash-$$-$RANDOM
vk_domain_create "$dom" 256M 1
vk_domain_start "$dom"

vk_domain_write "$dom" vda 0xcd 64M 1M
vk_backup 0 "$dom" --level auto
vk_bk_check_committed "$dom" full null
full1=$(vk_bk .backup)
vk_domain_write "$dom" vda 0xab 128M 1M
vk_backup 0 "$dom" --level auto
vk_bk_check_committed "$dom" inc "$full1"
inc1=$(vk_bk .backup)
cp_inc1=$(vk_bk .checkpoint)
vk_archive_check "$VK_BK_TARGET/$dom/$inc1/vda.tar" "$((128 * M)):$M:0xab"

# Crash QEMU (after a flush, so that the data written so far survives: the
# full after the crash must hold it), then start the domain again.
vk_domain_flush "$dom" vda
pid=$(vk_domain_qemu_pid "$dom")
[ -n "$pid" ] && kill -0 "$pid" || vk_fail "no QEMU process for '$dom'"
kill -9 "$pid"
vk_wait_for 30 vk_domain_is_off "$dom" || vk_fail "libvirt did not see QEMU die"
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0xee 200M 1M

# auto -> full, with the reason.
vk_backup 0 "$dom" --level auto
vk_bk_check_committed "$dom" full null
full2=$(vk_bk .backup)
vk_expect_eq "$(vk_bk .requested_level)" auto "requested level after the crash"
reason=$(vk_bk .reason)
[ -n "$reason" ] && [ "$reason" != null ] || vk_fail "the fallback full has no reason"
nlines=$(grep -c . "$VK_BK_ERR" || true)
[ "$nlines" = 1 ] || {
    sed 's/^/  stderr: /' "$VK_BK_ERR" >&2
    vk_fail "the fallback to full printed $nlines lines on stderr, expected one"
}
vk_expect_grep "$VK_BK_ERR" "full" "the fallback line"
vk_archive_check "$VK_BK_TARGET/$dom/$full2/vda.tar" \
    "$((64 * M)):$M:0xcd" "$((128 * M)):$M:0xab" "$((200 * M)):$M:0xee"
cp_full2=$(vk_bk .checkpoint)
vk_has_line "$(vk_checkpoints "$dom")" "$cp_full2" || vk_fail "the new full's checkpoint is missing"
if vk_has_line "$(vk_checkpoints "$dom")" "$cp_inc1"; then
    vk_fail "the broken checkpoint '$cp_inc1' was left behind"
fi

# The older backups are still listed as committed.
vk_list "$dom"
for id in "$full1" "$inc1" "$full2"; do
    vk_expect_eq "$(vk_list_get "$id" status)" committed "status of $id after the crash"
done
vk_expect_eq "$(vk_list_get "$inc1" parent)" "$full1" "parent of $inc1 after the crash"

# The chain goes on from the new full.
vk_domain_write "$dom" vda 0x11 8M 1M
vk_backup 0 "$dom" --level auto
vk_bk_check_committed "$dom" inc "$full2"
inc2=$(vk_bk .backup)
vk_expect_eq "$(vk_bk .reason)" null "reason of the inc after the new full"
vk_archive_check "$VK_BK_TARGET/$dom/$inc2/vda.tar" "$((8 * M)):$M:0x11"
vk_log "PASS: $full1 $inc1 | kill -9 | $full2 ($reason) $inc2"
