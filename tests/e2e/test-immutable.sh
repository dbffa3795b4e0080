#!/bin/bash
# immutable_days on an S3 target, against Ceph radosgw (a bucket with Object
# Lock enabled): every object a backup writes is locked (COMPLIANCE) until a
# date; radosgw refuses the DELETE of a locked archive version; virtkeep's
# prune keeps the backup and says until when; once the lock has expired, a
# prune deletes it.  VIRTKEEP_TEST_LOCK_SECONDS shortens the retention of
# immutable_days = 1 to seconds.  A file target with immutable_days is
# refused: only the file system or the server can make it immutable.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq curl qemu-img
vk_rgw_up
lock_s=40
export VIRTKEEP_TEST_LOCK_SECONDS=$lock_s
dom=vk-imm-$$-$RANDOM
prefix=vk-$$-$RANDOM
{
    printf '\n[target locked]\nurl = s3://%s/%s?endpoint=%s&region=%s\n' "$VK_RGW_LOCK_BUCKET" \
        "$prefix" "$VK_RGW_ENDPOINT" "${VK_RGW_REGION:-us-east-1}"
    printf 'access_key_id = %s\nsecret_key_file = %s\n' "$VK_RGW_ACCESS_KEY" "$VK_RGW_SECRET_FILE"
    printf '\n[policy hold]\nimmutable_days = 1\nkeep_last = 1\ntargets = locked\n'
    printf '\n[domain %s]\npolicy = hold\n' "$dom"
} >>"$VK_BK_CONFIG"

# header FILE NAME: the value of header NAME in the headers FILE.
header() {
    tr -d '\r' <"$1" | sed -n "s/^$2: *//Ip" | tail -n 1
}

# 12 MiB of random data: the first archive is a multipart upload (8 MiB
# parts), whose CreateMultipartUpload carries the lock and parts Content-MD5.
vk_domain_create "$dom" 16M 1
head -c 12M /dev/urandom >"$VK_SCRATCH/seed.raw"
qemu-img convert -n -f raw -O qcow2 "$VK_SCRATCH/seed.raw" "$(vk_domain_image "$dom" vda)"
vk_domain_start "$dom"
vk_backup 0 "$dom" --level full --target locked
first=$(vk_bk .backup)
t_first=$(date +%s)
key=$prefix/$dom/$first/vda.tar

# The server holds a COMPLIANCE retention and refuses to delete the version.
vk_rgw_s3req "$VK_SCRATCH/head" HEAD "/$VK_RGW_LOCK_BUCKET/$key" -I
[ "$VK_RGW_STATUS" = 200 ] || vk_fail "HEAD of the archive: HTTP $VK_RGW_STATUS"
vk_expect_eq "$(header "$VK_SCRATCH/head" x-amz-object-lock-mode)" COMPLIANCE \
    "lock mode of the archive"
until_date=$(header "$VK_SCRATCH/head" x-amz-object-lock-retain-until-date)
version=$(header "$VK_SCRATCH/head" x-amz-version-id)
[ -n "$until_date" ] && [ -n "$version" ] || vk_fail "no retain-until date or version on the archive"
[ "$(header "$VK_SCRATCH/head" content-length)" -gt $((8 << 20)) ] ||
    vk_fail "the archive is not larger than one part: the multipart path is not tested"
vk_rgw_s3req "$VK_SCRATCH/del" DELETE "/$VK_RGW_LOCK_BUCKET/$key?versionId=$version"
vk_expect_eq "$VK_RGW_STATUS" 403 "DELETE of the locked archive version"
vk_log "the archive is locked (COMPLIANCE until $until_date); radosgw refuses its DELETE"

sleep 1
vk_domain_write "$dom" vda 0x43 4M 1M
vk_backup 0 "$dom" --level full --target locked
second=$(vk_bk .backup)

# status says until when the newest immutable copy stays locked.
vk_vk status "$dom" --json >"$VK_SCRATCH/status.json" 2>"$VK_SCRATCH/status.err" || true
imm=$(jq -r '.domains[0].immutable_until' "$VK_SCRATCH/status.json")
vk_expect_eq "$(jq -r '.domains[0].last_backup' "$VK_SCRATCH/status.json")" "$second" \
    "the newest immutable copy"
[ "$imm" != null ] && [ "$imm" -gt "$(date +%s)" ] ||
    vk_fail "status gives no future immutable_until: $imm"

# keep_last = 1: the first backup is due, but locked: kept, and said until when.
vk_vk prune "$dom" >"$VK_SCRATCH/prune1.out" 2>&1 || {
    cat "$VK_SCRATCH/prune1.out" >&2
    vk_fail "prune failed"
}
vk_expect_grep "$VK_SCRATCH/prune1.out" "kept backup '$first'.*locked \(S3 Object Lock\) until 20" \
    "prune of a locked backup"
vk_list "$dom"
[ -n "$(vk_list_get "$first" id)" ] || vk_fail "prune removed the locked backup from the catalog"
vk_rgw_s3req "$VK_SCRATCH/get" HEAD "/$VK_RGW_LOCK_BUCKET/$key" -I
vk_expect_eq "$VK_RGW_STATUS" 200 "the locked archive after the prune"
vk_log "prune kept the locked backup and said until when"

# After the lock: the prune deletes it.
while [ "$(date +%s)" -le $((t_first + lock_s + 2)) ]; do sleep 1; done
vk_vk prune "$dom" >"$VK_SCRATCH/prune2.out" 2>&1 || {
    cat "$VK_SCRATCH/prune2.out" >&2
    vk_fail "the prune after the lock failed"
}
vk_list "$dom"
[ -z "$(vk_list_get "$first" id)" ] || vk_fail "the expired backup is still in the catalog"
[ -n "$(vk_list_get "$second" id)" ] || vk_fail "prune removed the newest backup"
vk_rgw_s3req "$VK_SCRATCH/get" HEAD "/$VK_RGW_LOCK_BUCKET/$key" -I
vk_expect_eq "$VK_RGW_STATUS" 404 "the archive after the lock expired and a prune"
vk_log "after the lock expired, prune deleted the backup"

# A file target cannot promise immutability: refused, saying why.
printf '\n[target disk]\nurl = file://%s/disk\n' "$VK_SCRATCH" >>"$VK_BK_CONFIG"
vk_backup fail "$dom" --level full --target disk
vk_expect_grep "$VK_BK_ERR" "cannot lock objects \(immutable_days\)" "immutable_days on a file target"
