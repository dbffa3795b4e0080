#!/bin/bash
# The s3:// backend end to end: the transport contract suite and S3's own
# tests (multipart, abort, credentials, 503 bursts, resets, a slow link,
# pagination, a client killed mid-upload) through a fault-injecting proxy
# (tests/lib/s3-fault-proxy.py), against both test servers:
#   - s3rver, then the server killed in the middle of a multipart upload and
#     nothing of it left once it is back;
#   - Ceph radosgw (the shared one of VK_RGW_ENV, or one started here), which
#     checks signatures and payload digests itself and lists the multipart
#     uploads left behind (there must be none after a failed or aborted put).
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

vk_require_cmd python3
prog=$abs_top_builddir/tests/e2e/test-transport-s3
[ -x "$prog" ] || vk_skip "test-transport-s3 is not built"

# start_proxy [upstream-checks]: a fault proxy in front of $VK_S3_ENDPOINT.
start_proxy() {
    local pf=$VK_SCRATCH/proxy-$VK_S3_FLAVOR.port pid
    rm -f "$pf"
    python3 "$abs_top_srcdir/tests/lib/s3-fault-proxy.py" "$pf" "$VK_S3_ENDPOINT" "$@" \
        >>"$VK_SCRATCH/proxy-$VK_S3_FLAVOR.log" 2>&1 &
    pid=$!
    vk_on_exit "vk_kill $pid"
    vk_wait_for 20 test -s "$pf" || vk_fail "the fault proxy did not start"
    VK_S3_PROXY=http://127.0.0.1:$(cat "$pf")
    export VK_S3_PROXY
}

vk_log "against s3rver"
vk_start_s3rver vk-s3-test
start_proxy
"$prog" || vk_fail "the contract suite or the S3 tests failed against s3rver"

# Kill the server (the one this test started, by its pid) mid-upload.
port=${VK_S3_ENDPOINT##*:}
pid=$(pgrep -f -- "-p $port --no-vhost-buckets" | head -1)
[ -n "$pid" ] || vk_fail "cannot find the s3rver on port $port"
"$prog" kill "$pid" || vk_fail "the put did not fail clearly with the server killed"
# Back up on the same data: the interrupted object must not be there.
vk_start_s3rver vk-s3-test
"$prog" absent victim || vk_fail "a partial object is visible after the kill"

vk_log "against radosgw"
t0=$SECONDS
vk_start_rgw vk-transport
# radosgw checks payload digests itself: the proxy forwards corrupted parts.
start_proxy upstream-checks
"$prog" || vk_fail "the contract suite or the S3 tests failed against radosgw"
vk_log "radosgw part: $((SECONDS - t0)) s"
vk_log "PASS"
