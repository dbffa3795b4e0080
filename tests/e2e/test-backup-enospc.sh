#!/bin/bash
# End-to-end: the target runs out of space (issue 3).  A target on an 8 MiB
# tmpfs gets 32 MiB of incompressible data: a clear error naming the target
# and the lack of space, exit 1, nothing on the target (no archive, no
# manifest, no temp file), the catalog row failed, no new checkpoint and no
# job left.  On a larger tmpfs at the same place the next backup works.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd mount umount mountpoint
dom=vk-bk-nospc-$$-$RANDOM
vk_domain_create "$dom" 256M 1
vk_fill_random "$(vk_domain_image "$dom" vda)" 32M
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0xcd 128M 1M

mnt=$VK_SCRATCH/small
mkdir -p "$mnt"
mount -t tmpfs -o size=8m,mode=0755 tmpfs "$mnt" || vk_skip "cannot mount a tmpfs"
vk_on_exit "mountpoint -q '$mnt' && umount '$mnt'"
vk_bk_add_target small "$mnt"

cps=$(vk_checkpoints "$dom" | tr '\n' ' ')
bitmaps=$(vk_qemu_bitmaps "$dom" | tr '\n' ' ')
vk_backup 1 "$dom" --level auto --target small
vk_expect_grep "$VK_BK_ERR" "no space|full" "the error"
vk_expect_grep "$VK_BK_ERR" "'small'|$mnt" "the error (naming the target)"
vk_expect_eq "$(vk_files "$mnt" | tr '\n' ' ')" "" "files on the full target"
vk_list "$dom"
vk_expect_eq "$(vk_list_ids | wc -l)" 1 "backups in the catalog"
id=$(vk_list_ids)
vk_expect_eq "$(vk_list_get "$id" status)" failed "status of $id"
vk_list_get "$id" error >"$VK_SCRATCH/error"
vk_expect_grep "$VK_SCRATCH/error" "no space|full" "the error recorded for $id"
vk_expect_eq "$(vk_checkpoints "$dom" | tr '\n' ' ')" "$cps" "checkpoints after the failure"
vk_expect_eq "$(vk_qemu_bitmaps "$dom" | tr '\n' ' ')" "$bitmaps" "QEMU bitmaps after the failure"
vk_backup_job_ended "$dom" || vk_fail "a libvirt job is left after the failure"

# More room at the same place: the next backup works.
umount "$mnt"
mount -t tmpfs -o size=128m,mode=0755 tmpfs "$mnt"
vk_backup 0 "$dom" --level auto --target small
VK_BK_TARGET_DIR=$mnt vk_bk_check_committed "$dom" full null
vk_archive_check "$mnt/$dom/$(vk_bk .backup)/vda.tar" "0:$((32 * M)):random" \
    "$((128 * M)):$M:0xcd"
vk_list "$dom"
vk_expect_eq "$(vk_list_get "$(vk_bk .backup)" status)" committed "status of the retry"
vk_expect_eq "$(vk_list_get "$id" status)" failed "status of $id after the retry"
vk_log "PASS: no space on 'small' failed cleanly, then the retry committed"
