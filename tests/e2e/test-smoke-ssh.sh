#!/bin/bash
# Smoke test for SSH/SFTP with libssh2: an SFTP round trip to the harness sshd
# with a strict host key check, then proof that an unknown or changed host key
# is refused.
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

vk_start_sshd
smoke=$abs_top_builddir/tests/e2e/smoke-sftp
remote=$VK_SCRATCH/sftp-round-trip.bin

"$smoke" 127.0.0.1 "$VK_SSH_PORT" "$VK_SSH_USER" "$VK_SSH_KEY" "$VK_SSH_KNOWN_HOSTS" "$remote"
[ ! -e "$remote" ] || vk_fail "'$remote' was not removed"

# Expect smoke-sftp to refuse the server (exit 3) with the known_hosts $1,
# without creating the remote file.
expect_refused() {
    local rc=0
    "$smoke" 127.0.0.1 "$VK_SSH_PORT" "$VK_SSH_USER" "$VK_SSH_KEY" "$1" "$remote" \
        2>"$VK_SCRATCH/refused.err" || rc=$?
    cat "$VK_SCRATCH/refused.err" >&2
    [ "$rc" = 3 ] || vk_fail "with known_hosts '$1', smoke-sftp exited $rc, expected 3"
    grep -q "$2" "$VK_SCRATCH/refused.err" || vk_fail "no '$2' in the error"
    [ ! -e "$remote" ] || vk_fail "'$remote' was written despite the refused host key"
}

# The same host and port with another key: a changed host key.
ssh-keygen -q -t ed25519 -N '' -f "$VK_SCRATCH/other_host_key"
echo "[127.0.0.1]:$VK_SSH_PORT $(cut -d' ' -f1,2 "$VK_SCRATCH/other_host_key.pub")" \
    >"$VK_SCRATCH/known_hosts.changed"
expect_refused "$VK_SCRATCH/known_hosts.changed" "does not match"

# The right key under another port: the host is unknown.
echo "[127.0.0.1]:$((VK_SSH_PORT + 1)) $(cut -d' ' -f1,2 "$VK_SSH_DIR/host_key.pub")" \
    >"$VK_SCRATCH/known_hosts.unknown"
expect_refused "$VK_SCRATCH/known_hosts.unknown" "is not in"

vk_log "PASS"
