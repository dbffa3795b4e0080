#!/bin/bash
# End-to-end: the target fills up at the last put of a backup, the
# manifest, after the archive (vda.tar) was committed.  The target is a
# tmpfs that holds a file of its own (what it held before) and exactly room
# for vda.tar: the backup fails naming manifest.json and the lack of space,
# and the target holds exactly what it held before (no vda.tar, no manifest,
# no temp file, no directory).  So the retry has the same room: it fails at
# the manifest again (not at vda.tar, as when the first archive stayed),
# and leaves the target as it was.  On a larger tmpfs the next backup works.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd mount umount mountpoint sha256sum
dom=vk-bk-nospcm-$$-$RANDOM
vk_domain_create "$dom" 256M 1
vk_fill_random "$(vk_domain_image "$dom" vda)" 24M
vk_domain_start "$dom"

# A full backup to a roomy target measures vda.tar (the same data, the same
# level: the same size).
vk_backup 0 "$dom" --level copy --target main
tar_size=$(vk_bk '.disks[0].archive_size')
[ "$tar_size" -gt 0 ] || vk_fail "the measuring backup stored no archive"
pages() { echo $((($1 + 4095) / 4096)); }

mnt=$VK_SCRATCH/small
mkdir -p "$mnt"
keep_size=$((256 * 1024))
tmpfs_kib=$((($(pages "$tar_size") + $(pages $keep_size)) * 4))
mount -t tmpfs -o "size=${tmpfs_kib}k,mode=0755" tmpfs "$mnt" || vk_skip "cannot mount a tmpfs"
vk_on_exit "mountpoint -q '$mnt' && umount '$mnt'"
vk_bk_add_target small "$mnt"
mkdir -p "$mnt/other"
head -c $keep_size /dev/urandom >"$mnt/other/keep.bin"

# What the target holds: every file and directory, with sizes and digests.
snapshot() {
    (cd "$mnt" && find . -mindepth 1 -printf '%y %p %s\n' | sort &&
        find . -type f -exec sha256sum {} + | sort)
}
before=$(snapshot)

for try in 1 2; do
    vk_backup 1 "$dom" --level copy --target small
    vk_expect_grep "$VK_BK_ERR" "no space|full" "the error of try $try"
    vk_expect_grep "$VK_BK_ERR" "manifest\.json" "the error of try $try (the manifest's put)"
    after=$(snapshot)
    if [ "$after" != "$before" ]; then
        diff <(echo "$before") <(echo "$after") | sed 's/^/  | /' >&2
        vk_fail "try $try: the target does not hold what it held before the failed backup"
    fi
done
vk_list "$dom"
vk_expect_eq "$(vk_list_ids failed | wc -l)" 2 "failed backups in the catalog"

# More room at the same place: the next backup works.
umount "$mnt"
mount -t tmpfs -o size=128m,mode=0755 tmpfs "$mnt"
vk_backup 0 "$dom" --level copy --target small
VK_BK_TARGET_DIR=$mnt vk_bk_check_committed "$dom" copy null
vk_log "PASS: the manifest's put failed on a full target twice, leaving it as it was each time"
