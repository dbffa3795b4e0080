#!/bin/bash
# Unfinished S3 multipart uploads of a domain are aborted by the recovery
# that the next backup of the domain runs, against Ceph radosgw
# (tests/lib/rgw.sh), which implements ListMultipartUploads and
# AbortMultipartUpload (s3rver does not: there, recovery has nothing to
# abort).  Under the target's prefix, the domain gets:
#   - a committed full backup X;
#   - an upload under DOMAIN/<an id with no catalog row>/vda.tar, begun with
#     plain curl (a put whose process and row are gone);
#   - an upload under DOMAIN/X/extra.tar, begun with curl: X is committed,
#     so it may be a copy in progress, and recovery must leave it alone;
#   - the upload of vda.tar of a backup killed with kill -9 mid-upload (its
#     catalog row is left running).
# The next backup commits, and afterwards ListMultipartUploads shows only
# the upload under X.
#
# VK_RGW_ENV=FILE reuses a radosgw started by 'tests/lib/rgw.sh start DIR'.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_require_cmd curl python3
if [ -n "${VK_RGW_ENV:-}" ]; then
    [ -f "$VK_RGW_ENV" ] || vk_fail "VK_RGW_ENV='$VK_RGW_ENV' does not exist"
    # shellcheck source=/dev/null
    . "$VK_RGW_ENV"
else
    vk_require_root_or_skip
    vk_require_cmd ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool
    . "$abs_top_srcdir/tests/lib/rgw.sh"
    vk_on_exit "vk_rgw_stop '$VK_SCRATCH/rgw'"
    vk_rgw_start "$VK_SCRATCH/rgw" || vk_fail "radosgw did not start (logs above)"
    # shellcheck source=/dev/null
    . "$VK_SCRATCH/rgw/env"
fi
vk_log "radosgw at $VK_RGW_ENDPOINT"
vk_bk_setup

EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
RESP=$VK_SCRATCH/resp
bucket=$VK_RGW_BUCKET
prefix=vk-$$-$RANDOM

# s3 METHOD PATH: a SigV4-signed request without a body; sets CODE, leaves
# the body in $RESP.  The credentials go through a curl config on stdin.
s3() {
    CODE=$(printf 'user = "%s:%s"\n' "$VK_RGW_ACCESS_KEY" "$VK_RGW_SECRET_KEY" |
        curl -sS -m 30 -K - --aws-sigv4 "aws:amz:${VK_RGW_REGION:-us-east-1}:s3" -X "$1" \
            -H "x-amz-content-sha256: $EMPTY_SHA256" -o "$RESP" -w '%{http_code}' \
            "$VK_RGW_ENDPOINT$2") || CODE=000
}

# uploads: "KEY UPLOAD_ID" of every unfinished upload under the prefix, sorted.
uploads() {
    s3 GET "/$bucket?uploads="
    [ "$CODE" = 200 ] || vk_fail "ListMultipartUploads: HTTP $CODE: $(head -c 400 "$RESP")"
    python3 - "$RESP" "$prefix/" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = root.tag[:root.tag.index('}') + 1] if root.tag.startswith('{') else ''
for u in root.iter(ns + 'Upload'):
    key, uid = u.find(ns + 'Key').text, u.find(ns + 'UploadId').text
    if key.startswith(sys.argv[2]):
        print(key, uid)
EOF
}

# begin KEY: CreateMultipartUpload of KEY; prints the upload id.
begin() {
    s3 POST "/$bucket/$1?uploads="
    [ "$CODE" = 200 ] || vk_fail "CreateMultipartUpload of '$1': HTTP $CODE: $(head -c 400 "$RESP")"
    sed -n 's:.*<UploadId>\([^<]*\)</UploadId>.*:\1:p' "$RESP"
}

cat >>"$VK_BK_CONFIG" <<EOF

[target cloud]
url = s3://$bucket/$prefix?endpoint=$VK_RGW_ENDPOINT&region=${VK_RGW_REGION:-us-east-1}&part_size=5MiB&parallel=1
access_key_id = $VK_RGW_ACCESS_KEY
secret_key_file = $VK_RGW_SECRET_FILE
EOF

dom=vk-bk-rgwup-$$-$RANDOM
vk_domain_create "$dom" 512M 1
vk_fill_random "$(vk_domain_image "$dom" vda)" 160M
vk_domain_start "$dom"

vk_backup 0 "$dom" --level full --target cloud
x=$(vk_bk .backup)
vk_log "committed backup $x"

# A backup killed with kill -9 while its multipart upload runs.
killed_upload() { uploads | grep -q .; }
vk_bk_start_bg "$dom" --level full --target cloud
vk_wait_for 120 killed_upload || {
    sed 's/^/  | /' "$VK_BG_ERR" >&2
    vk_fail "the second backup began no multipart upload"
}
kill -9 "$VK_BG_PID"
wait "$VK_BG_PID" 2>/dev/null || true

# Then (a backup's recovery would abort it) a put without a row, and one
# under the committed backup.
stray_key=$prefix/$dom/$dom-20000101T000000Z/vda.tar
stray=$(begin "$stray_key")
copy_key=$prefix/$dom/$x/extra.tar
copy=$(begin "$copy_key")
[ -n "$stray" ] && [ -n "$copy" ] || vk_fail "no upload id from CreateMultipartUpload"
before=$(uploads)
vk_log "unfinished uploads before the recovery:"
echo "$before" | sed 's/^/  /' >&2
[ "$(echo "$before" | wc -l)" -ge 3 ] || vk_fail "expected 3 unfinished uploads, got: $before"

# The next backup of the domain recovers first.
vk_backup 0 "$dom" --level full --target cloud
after=$(uploads)
vk_expect_eq "$after" "$copy_key $copy" "unfinished uploads after the recovery"

s3 DELETE "/$bucket/$copy_key?uploadId=$copy"
[ "$CODE" = 204 ] || vk_fail "AbortMultipartUpload of the upload under $x: HTTP $CODE"
vk_log "PASS: the recovery aborted the uploads of the killed backup and of a put without a row"
