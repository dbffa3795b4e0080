#!/bin/bash
# Smoke test for S3 with libcurl: put, get, ranged get and delete with SigV4
# signing (smoke-s3), on the harness s3rver and on radosgw.  s3rver parses
# the SigV4 Authorization header and checks the access key but not the
# signature itself (signing is tested against AWS's published examples
# elsewhere), so prove there that the requests carry a well-formed SigV4
# header with an unknown key.  radosgw checks the signature: a wrong secret
# is refused too.
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

smoke=$abs_top_builddir/tests/e2e/smoke-s3
key=smoke/object-$$.bin

# refused WHAT CODE ACCESS_KEY SECRET_FILE: smoke-s3 exits 4 with CODE.
refused() {
    local rc=0
    "$smoke" "$VK_S3_ENDPOINT" "$VK_S3_BUCKET" "$3" "$4" "$key" 2>"$VK_SCRATCH/refused.err" ||
        rc=$?
    cat "$VK_SCRATCH/refused.err" >&2
    [ "$rc" = 4 ] || vk_fail "with $1 smoke-s3 exited $rc, expected 4"
    grep -q "$2" "$VK_SCRATCH/refused.err" || vk_fail "no $2 in the error"
}

vk_start_s3rver smoke-bucket
"$smoke" "$VK_S3_ENDPOINT" "$VK_S3_BUCKET" "$VK_S3_ACCESS_KEY" "$VK_S3_SECRET_FILE" "$key"
[ -z "$(find "$VK_S3_DIR/data/$VK_S3_BUCKET" -type f -name 'object-*' 2>/dev/null)" ] ||
    vk_fail "the object is still in the bucket after DELETE"
# An unknown access key: the server must refuse with 403 (exit 4).
refused "an unknown access key" InvalidAccessKeyId NOT-A-KEY "$VK_S3_SECRET_FILE"

vk_start_rgw vk-smoke
"$smoke" "$VK_S3_ENDPOINT" "$VK_S3_BUCKET" "$VK_S3_ACCESS_KEY" "$VK_S3_SECRET_FILE" "$key"
vk_rgw_s3req "$VK_SCRATCH/head.out" HEAD "/$VK_S3_BUCKET/$key" -I
[ "$VK_RGW_STATUS" = 404 ] || vk_fail "HEAD after DELETE on radosgw: HTTP $VK_RGW_STATUS"
refused "an unknown access key on radosgw" InvalidAccessKeyId NOT-A-KEY "$VK_S3_SECRET_FILE"
(
    umask 077
    printf 'not-the-secret' >"$VK_SCRATCH/wrong-secret"
)
refused "a wrong secret on radosgw" SignatureDoesNotMatch "$VK_S3_ACCESS_KEY" \
    "$VK_SCRATCH/wrong-secret"

vk_log "PASS"
