#!/bin/bash
# A real S3 server checks what we send: against Ceph radosgw (tests/lib/rgw.sh)
# with plain curl --aws-sigv4, show that
#   (a) a correctly signed PUT and GET work,
#   (b) a wrong signature is refused (403 SignatureDoesNotMatch),
#   (c) a body that does not match x-amz-content-sha256 is refused
#       (400 XAmzContentSHA256Mismatch),
#   (d) a wrong Content-MD5 is refused (400 BadDigest),
#   (e) in an Object Lock bucket, a version under COMPLIANCE retention cannot
#       be deleted (403) until its retain-until date has passed (then 204),
#   (f) ListMultipartUploads lists an initiated upload and
#       AbortMultipartUpload removes it.
# s3rver, the other test server, checks none of (b)-(e).
#
# VK_RGW_ENV=FILE reuses a radosgw started by 'tests/lib/rgw.sh start DIR'
# (FILE is DIR/env; scripts/test starts one for make check) instead of
# starting one (harness.sh: vk_rgw_up).
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

vk_require_cmd curl sha256sum md5sum base64
vk_rgw_up
vk_log "radosgw at $VK_RGW_ENDPOINT (started in ${VK_RGW_START_SECONDS:-?} s)"

EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
RESP=$VK_SCRATCH/resp
HDRS=$VK_SCRATCH/headers
run=$$-$RANDOM

# s3 METHOD PATH [CURL ARGS...]: a SigV4-signed request; sets CODE, leaves the
# body in $RESP and the headers in $HDRS.  SECRET overrides the secret key.
# The credentials go through a curl config on stdin, not the command line.
s3() {
    local method=(-X "$1") path=$2
    # With -X HEAD curl would wait for the body that Content-Length announces.
    [ "$1" != HEAD ] || method=(-I)
    shift 2
    CODE=$(printf 'user = "%s:%s"\n' "$VK_RGW_ACCESS_KEY" "${SECRET:-$VK_RGW_SECRET_KEY}" |
        curl -sS -m 30 -K - --aws-sigv4 "aws:amz:${VK_RGW_REGION:-us-east-1}:s3" \
            "${method[@]}" -o "$RESP" -D "$HDRS" -w '%{http_code}' "$@" \
            "$VK_RGW_ENDPOINT$path") || CODE=000
}

# expect WHAT STATUS [ERROR-CODE]: the last answer had STATUS (and that S3
# error code).
expect() {
    local what=$1 status=$2 err=${3:-}
    if [ "$CODE" != "$status" ]; then
        vk_fail "$what: HTTP $CODE, expected $status: $(head -c 400 "$RESP" 2>/dev/null)"
    fi
    if [ -n "$err" ] && ! grep -q "<Code>$err</Code>" "$RESP"; then
        vk_fail "$what: no <Code>$err</Code> in: $(head -c 400 "$RESP")"
    fi
    vk_log "  $what: $CODE${err:+ $err}"
}

header() {
    tr -d '\r' <"$HDRS" | sed -n "s/^$1: *//Ip" | tail -n 1
}

sha256() {
    sha256sum "$1" | cut -d' ' -f1
}

# Content-MD5 is the base64 of the binary digest.
md5_b64() {
    printf '%b' "$(md5sum "$1" | cut -d' ' -f1 | sed 's/../\\x&/g')" | base64
}

body=$VK_SCRATCH/body
other=$VK_SCRATCH/other
head -c 1048576 /dev/urandom >"$body"
head -c 1048576 /dev/urandom >"$other"
bucket=$VK_RGW_BUCKET
lock=$VK_RGW_LOCK_BUCKET

vk_log "(a) a correctly signed PUT and GET"
s3 PUT "/$bucket/a-$run" -H "x-amz-content-sha256: $(sha256 "$body")" \
    -H "Content-MD5: $(md5_b64 "$body")" --data-binary "@$body"
expect "PUT" 200
s3 GET "/$bucket/a-$run" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "GET" 200
cmp -s "$RESP" "$body" || vk_fail "GET returned other bytes than the PUT sent"

vk_log "(b) a wrong signature"
SECRET=not-the-secret s3 PUT "/$bucket/b-$run" -H "x-amz-content-sha256: $(sha256 "$body")" \
    --data-binary "@$body"
expect "PUT signed with a wrong secret" 403 SignatureDoesNotMatch
SECRET=not-the-secret s3 GET "/$bucket/a-$run" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "GET signed with a wrong secret" 403 SignatureDoesNotMatch
CODE=$(curl -sS -m 30 -o "$RESP" -w '%{http_code}' -X PUT --data-binary "@$body" \
    "$VK_RGW_ENDPOINT/$bucket/b-$run") || CODE=000
expect "anonymous PUT" 403 AccessDenied
s3 HEAD "/$bucket/b-$run" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "HEAD of the refused object" 404

vk_log "(c) a body that does not match x-amz-content-sha256"
s3 PUT "/$bucket/c-$run" -H "x-amz-content-sha256: $(sha256 "$other")" --data-binary "@$body"
expect "PUT" 400 XAmzContentSHA256Mismatch
s3 HEAD "/$bucket/c-$run" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "HEAD of the refused object" 404

vk_log "(d) a wrong Content-MD5"
s3 PUT "/$bucket/d-$run" -H "x-amz-content-sha256: $(sha256 "$body")" \
    -H "Content-MD5: $(md5_b64 "$other")" --data-binary "@$body"
expect "PUT" 400 BadDigest
s3 HEAD "/$bucket/d-$run" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "HEAD of the refused object" 404

vk_log "(e) Object Lock, COMPLIANCE mode, retained for 5 s"
until=$(($(date +%s) + 5))
until_iso=$(date -u -d "@$until" +%Y-%m-%dT%H:%M:%SZ)
key=e-$run
s3 PUT "/$lock/$key" -H "x-amz-content-sha256: $(sha256 "$body")" \
    -H "Content-MD5: $(md5_b64 "$body")" -H "x-amz-object-lock-mode: COMPLIANCE" \
    -H "x-amz-object-lock-retain-until-date: $until_iso" --data-binary "@$body"
expect "PUT with retention until $until_iso" 200
version=$(header x-amz-version-id)
[ -n "$version" ] || vk_fail "PUT in the Object Lock bucket returned no x-amz-version-id"
s3 GET "/$lock/$key?retention=&versionId=$version" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "GET retention" 200
grep -q '<Mode>COMPLIANCE</Mode>' "$RESP" || vk_fail "no COMPLIANCE retention: $(cat "$RESP")"
s3 DELETE "/$lock/$key?versionId=$version" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "DELETE of the version while retained" 403 AccessDenied
# A DELETE without a version only adds a delete marker: the data stays.
s3 DELETE "/$lock/$key" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "DELETE without versionId (delete marker)" 204
marker=$(header x-amz-version-id)
s3 GET "/$lock/$key?versionId=$version" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "GET of the retained version" 200
cmp -s "$RESP" "$body" || vk_fail "the retained version has other bytes than the PUT sent"
[ "$(date +%s)" -lt "$until" ] ||
    vk_fail "the refused DELETE came after the retain-until date (a slow machine?)"
while [ "$(date +%s)" -le "$until" ]; do
    sleep 0.2
done
s3 DELETE "/$lock/$key?versionId=$version" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "DELETE of the version after $until_iso" 204
s3 GET "/$lock/$key?versionId=$version" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "GET of the deleted version" 404
if [ -n "$marker" ]; then
    s3 DELETE "/$lock/$key?versionId=$marker" -H "x-amz-content-sha256: $EMPTY_SHA256"
    expect "DELETE of the delete marker" 204
fi

vk_log "(f) ListMultipartUploads and AbortMultipartUpload"
key=f-$run
# curl 7.88 signs '?uploads=' (with the '='), not '?uploads'.
s3 POST "/$bucket/$key?uploads=" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "CreateMultipartUpload" 200
upload=$(sed -n 's:.*<UploadId>\([^<]*\)</UploadId>.*:\1:p' "$RESP")
[ -n "$upload" ] || vk_fail "no UploadId in: $(cat "$RESP")"
s3 PUT "/$bucket/$key?partNumber=1&uploadId=$upload" \
    -H "x-amz-content-sha256: $(sha256 "$body")" --data-binary "@$body"
expect "UploadPart 1" 200
s3 GET "/$bucket?uploads=" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "ListMultipartUploads" 200
grep -qF "<UploadId>$upload</UploadId>" "$RESP" ||
    vk_fail "the upload $upload is not listed: $(cat "$RESP")"
s3 DELETE "/$bucket/$key?uploadId=$upload" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "AbortMultipartUpload" 204
s3 GET "/$bucket?uploads=" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "ListMultipartUploads after the abort" 200
! grep -qF "<UploadId>$upload</UploadId>" "$RESP" ||
    vk_fail "the aborted upload $upload is still listed: $(cat "$RESP")"
# radosgw 16.2 answers NoSuchKey here where AWS says NoSuchUpload.
s3 GET "/$bucket/$key?uploadId=$upload" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "ListParts of the aborted upload" 404

s3 DELETE "/$bucket/a-$run" -H "x-amz-content-sha256: $EMPTY_SHA256"
expect "DELETE of the test object" 204
vk_log "PASS"
