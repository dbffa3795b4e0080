#!/bin/bash
# End-to-end: disk selection (issue 3).  A running domain with two disks
# (vda, vdb) and a cdrom (hdc):
#   --exclude vdb  -> only vda archived, no vdb.tar on the target;
#   --disks vdb    -> only vdb archived;
#   the cdrom is skipped with a message naming it, and asking for it by
#   name or naming an unknown disk fails without committing anything.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-bk-disks-$$-$RANDOM
vk_domain_create "$dom" 256M 2
head -c 1M /dev/zero >"$VK_SCRATCH/images/cd.iso"
chmod 0644 "$VK_SCRATCH/images/cd.iso"
"${VK_VIRSH[@]}" attach-disk "$dom" "$VK_SCRATCH/images/cd.iso" hdc --type cdrom \
    --targetbus ide --mode readonly --config >/dev/null ||
    vk_fail "cannot add a cdrom to '$dom'"
grep -q 'cdrom *hdc' <<<"$("${VK_VIRSH[@]}" domblklist "$dom" --details)" ||
    vk_fail "the domain has no cdrom hdc"
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0xcd 64M 1M
vk_domain_write "$dom" vdb 0xab 16M 2M

# 1. --exclude vdb.
vk_backup 0 "$dom" --level full --exclude vdb
vk_bk_check_committed "$dom" full null
b1=$(vk_bk .backup)
vk_expect_eq "$(vk_bk '[.disks[].disk] | join(",")')" vda "disks of --exclude vdb"
vk_expect_eq "$(vk_files "$VK_BK_TARGET/$dom/$b1" | tr '\n' ' ')" "manifest.json vda.tar " \
    "objects of --exclude vdb"
vk_archive_check "$VK_BK_TARGET/$dom/$b1/vda.tar" "$((64 * M)):$M:0xcd"
# The message may be on stderr or among the JSON's warnings.
{ cat "$VK_BK_ERR"; tr "\n" " " <"$VK_BK_OUT"; echo; } >"$VK_SCRATCH/messages"
vk_expect_grep "$VK_SCRATCH/messages" "hdc.*(cdrom|skip)|(cdrom|skip).*hdc" "message about the cdrom"

# 2. --disks vdb.
vk_backup 0 "$dom" --level full --disks vdb
vk_bk_check_committed "$dom" full null
b2=$(vk_bk .backup)
[ "$b2" != "$b1" ] || vk_fail "two backups share the id '$b1'"
vk_expect_eq "$(vk_bk '[.disks[].disk] | join(",")')" vdb "disks of --disks vdb"
vk_expect_eq "$(vk_files "$VK_BK_TARGET/$dom/$b2" | tr '\n' ' ')" "manifest.json vdb.tar " \
    "objects of --disks vdb"
vk_archive_check "$VK_BK_TARGET/$dom/$b2/vdb.tar" "$((16 * M)):$((2 * M)):0xab"
vk_expect_eq "$(vk_bk '.disks[0].data_bytes')" $((2 * M)) "data bytes of vdb"
vk_expect_eq "$(jq -r '.disks | length' "$VK_BK_TARGET/$dom/$b2/manifest.json")" 1 \
    "disks in the manifest of --disks vdb"

# 3. Both disks by default; the cdrom never.
vk_backup 0 "$dom" --level full
vk_bk_check_committed "$dom" full null
b3=$(vk_bk .backup)
vk_expect_eq "$(vk_bk '[.disks[].disk] | sort | join(",")')" vda,vdb "disks by default"
[ ! -e "$VK_BK_TARGET/$dom/$b3/hdc.tar" ] || vk_fail "the cdrom was archived"

# 4. The cdrom by name, and an unknown disk: refused, nothing committed.
vk_list "$dom"
before=$(vk_list_ids committed | tr '\n' ' ')
cps=$(vk_checkpoints "$dom" | tr '\n' ' ')
for args in "--disks hdc" "--exclude vdz" "--disks vda,vdz"; do
    # shellcheck disable=SC2086
    vk_backup fail "$dom" $args
    disk=${args##*[ ,]}
    vk_expect_grep "$VK_BK_ERR" "$disk" "error of backup $args"
    [ "$(grep -c . "$VK_BK_ERR")" -le 2 ] || vk_fail "backup $args: more than one message"
done
vk_list "$dom"
vk_expect_eq "$(vk_list_ids committed | tr '\n' ' ')" "$before" "committed backups after refusals"
vk_expect_eq "$(vk_checkpoints "$dom" | tr '\n' ' ')" "$cps" "checkpoints after refusals"
vk_log "PASS: $b1 (vda), $b2 (vdb), $b3 (vda+vdb); cdrom skipped"
