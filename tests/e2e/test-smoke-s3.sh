#!/bin/bash
# Smoke test for S3 with libcurl: put, get, ranged get and delete on the
# harness s3rver with SigV4 signing (smoke-s3).  s3rver parses the SigV4
# Authorization header and checks the access key but not the signature itself
# (signing is tested against AWS's published examples elsewhere), so prove
# that the requests carry a well-formed SigV4 header with an unknown key.
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

vk_start_s3rver smoke-bucket
smoke=$abs_top_builddir/tests/e2e/smoke-s3
key=smoke/object-$$.bin

"$smoke" "$VK_S3_ENDPOINT" "$VK_S3_BUCKET" "$VK_S3_ACCESS_KEY" "$VK_S3_SECRET_FILE" "$key"
[ -z "$(find "$VK_S3_DIR/data/$VK_S3_BUCKET" -type f -name 'object-*' 2>/dev/null)" ] ||
    vk_fail "the object is still in the bucket after DELETE"

# An unknown access key: the server must refuse with 403 (exit 4).
rc=0
"$smoke" "$VK_S3_ENDPOINT" "$VK_S3_BUCKET" NOT-A-KEY "$VK_S3_SECRET_FILE" "$key" \
    2>"$VK_SCRATCH/refused.err" || rc=$?
cat "$VK_SCRATCH/refused.err" >&2
[ "$rc" = 4 ] || vk_fail "with an unknown access key smoke-s3 exited $rc, expected 4"
grep -q InvalidAccessKeyId "$VK_SCRATCH/refused.err" || vk_fail "no InvalidAccessKeyId in the error"

vk_log "PASS"
