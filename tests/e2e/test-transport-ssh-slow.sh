#!/bin/bash
# The ssh:// backend on a bad link: the harness sshd behind
# tests/lib/tcp-fault-proxy.py, driven by `tests/e2e/test-transport-ssh slow`:
#   (a) a slow link (2 MB/s, 50 ms each way): a 16 MiB put completes and
#       reads back byte-identical, ranged reads work;
#   (b) a stall longer than the I/O timeout (2 s here) mid-upload: the put
#       fails after its attempts with an error naming the target and the
#       timeout, and no object (nor, after the next connection, temp file)
#       is left;
#   (c) connection resets mid-upload and mid-read: the put resumes and the
#       object is whole, the read is tried again.
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

prog=$abs_top_builddir/tests/e2e/test-transport-ssh
[ -x "$prog" ] || vk_skip "'$prog' is not built"
vk_require_cmd python3
vk_start_sshd
mkdir -p "$VK_SCRATCH/slow"

pf=$VK_SCRATCH/proxy.ports
python3 "$abs_top_srcdir/tests/lib/tcp-fault-proxy.py" "$pf" 127.0.0.1 "$VK_SSH_PORT" \
    >>"$VK_SCRATCH/proxy.log" 2>&1 &
proxy_pid=$!
vk_on_exit "vk_kill $proxy_pid"
vk_wait_for 20 test -s "$pf" || vk_fail "the fault proxy did not start: $(cat "$VK_SCRATCH/proxy.log")"
read -r VK_PROXY_PORT VK_PROXY_CTL <"$pf"
# known_hosts names the proxy's port: the host key is the sshd's.
echo "[127.0.0.1]:$VK_PROXY_PORT $(cut -d' ' -f1,2 "$VK_SSH_DIR/host_key.pub")" \
    >>"$VK_SSH_KNOWN_HOSTS"
export VK_PROXY_PORT VK_PROXY_CTL VK_SCRATCH

timeout 120 "$prog" slow || vk_fail "the slow-link cases failed (proxy log: $(tail -5 "$VK_SCRATCH/proxy.log"))"
vk_log "PASS"
