#!/bin/bash
# The ssh:// backend against the harness sshd: the whole transport contract
# suite plus the SSH-specific cases (host keys, credentials, lost
# connections), run by tests/e2e/test-transport-ssh; then `virtkeep targets`
# with an ssh target from a configuration file.
#
# The test runs in a private mount namespace (unshare -m), so that the
# "full" and "read-only" mounts the C program makes on the target directory
# are seen by the sshd it starts and vanish with the test whatever happens.

if [ -z "${VK_TEST_IN_MOUNT_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
    unshare -m --propagation private true 2>/dev/null; then
    VK_TEST_IN_MOUNT_NS=1 exec unshare -m --propagation private "$0" "$@"
fi

. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

prog=$abs_top_builddir/tests/e2e/test-transport-ssh
[ -x "$prog" ] || vk_skip "'$prog' is not built"
vk_start_sshd
vk_require_cmd ssh-keygen ssh-agent ssh-add

fx=$VK_SCRATCH/fx
mkdir -p "$fx" "$VK_SCRATCH/contract" "$VK_SCRATCH/specific"
chmod 0700 "$fx"
hostkey=$(cut -d' ' -f1,2 "$VK_SSH_DIR/host_key.pub")

# Host keys: the same host with another key (changed), the right key under
# another port (unknown), and the right entry hashed.
ssh-keygen -q -t ed25519 -N '' -f "$fx/other_host_key"
echo "[127.0.0.1]:$VK_SSH_PORT $(cut -d' ' -f1,2 "$fx/other_host_key.pub")" >"$fx/known_hosts.changed"
echo "[127.0.0.1]:$((VK_SSH_PORT + 1)) $hostkey" >"$fx/known_hosts.unknown"
{
    echo "# comment, a line libssh2 does not know, then the host"
    echo "@cert-authority *.example.com $(cut -d' ' -f1,2 "$fx/other_host_key.pub")"
    echo "[127.0.0.1]:$VK_SSH_PORT $hostkey"
} >"$fx/known_hosts.hashed"
ssh-keygen -q -H -f "$fx/known_hosts.hashed" 2>/dev/null
grep -q '^|1|' "$fx/known_hosts.hashed" || vk_fail "ssh-keygen -H did not hash the entry"
VK_SSH_HOST_FP=$(ssh-keygen -l -E sha256 -f "$VK_SSH_DIR/host_key.pub" | cut -d' ' -f2)

# User keys: one the server does not know, one encrypted that it knows.
ssh-keygen -q -t ed25519 -N '' -f "$fx/stranger_key"
ssh-keygen -q -t ed25519 -N 'correct horse battery' -f "$fx/enc_key"
cat "$fx/enc_key.pub" >>"$VK_SSH_DIR/authorized_keys"
(
    umask 077
    printf 'correct horse battery\n' >"$fx/passphrase"
    printf 'wrong horse\n' >"$fx/passphrase.wrong"
)
cp "$fx/passphrase" "$fx/passphrase.readable"
chmod 0644 "$fx/passphrase.readable"

# An agent holding the user key, for authentication without key_file.
eval "$(ssh-agent -s -a "$VK_SCRATCH/agent.sock")" >/dev/null
vk_on_exit "kill $SSH_AGENT_PID"
ssh-add -q "$VK_SSH_KEY" 2>/dev/null || vk_fail "ssh-add failed"
export VK_TEST_AGENT_SOCK=$SSH_AUTH_SOCK
unset SSH_AUTH_SOCK SSH_AGENT_PID

VK_SSHD_PID=$(pgrep -o -f -- "-f $VK_SSH_DIR/sshd_config") || vk_fail "cannot find the sshd"
export VK_SSH_FIXTURES=$fx VK_SSH_HOST_FP VK_SSHD_PID
[ -n "${VK_TEST_IN_MOUNT_NS:-}" ] && export VK_TEST_PRIVATE_MOUNTS=1

# `virtkeep targets` sees the ssh target through the registry.
url="ssh://$VK_SSH_USER@127.0.0.1:$VK_SSH_PORT$VK_SCRATCH/specific"
for kh in "$VK_SSH_KNOWN_HOSTS" "$fx/known_hosts.changed"; do
    cat >"$VK_SCRATCH/virtkeep-$(basename "$kh").conf" <<EOF
[catalog]
path = $VK_SCRATCH/catalog.db

[target offsite]
url = $url
key_file = $VK_SSH_KEY
known_hosts = $kh
EOF
done
chmod 0600 "$VK_SSH_KEY"
out=$("$abs_top_builddir/src/virtkeep" --config "$VK_SCRATCH/virtkeep-known_hosts.conf" \
    targets 2>&1) || vk_fail "virtkeep targets failed: $out"
echo "$out" | grep -Eq '^offsite +ssh +reachable ' || vk_fail "the ssh target is not reachable: $out"
rc=0
out=$("$abs_top_builddir/src/virtkeep" --config "$VK_SCRATCH/virtkeep-known_hosts.changed.conf" \
    targets 2>&1) || rc=$?
[ "$rc" != 0 ] || vk_fail "virtkeep targets accepted a changed host key: $out"
echo "$out" | grep -q "unreachable" || vk_fail "no 'unreachable' in: $out"
echo "$out" | grep -q "$VK_SSH_HOST_FP" || vk_fail "the fingerprint is not shown: $out"
# An encrypted key with its passphrase in a 0600 file, from the config.
cat >"$VK_SCRATCH/virtkeep-enc.conf" <<EOF
[target offsite]
url = $url
key_file = $fx/enc_key
passphrase_file = $fx/passphrase
known_hosts = $VK_SSH_KNOWN_HOSTS
EOF
out=$("$abs_top_builddir/src/virtkeep" --config "$VK_SCRATCH/virtkeep-enc.conf" targets 2>&1) ||
    vk_fail "virtkeep targets failed with an encrypted key: $out"
echo "$out" | grep -Eq '^offsite +ssh +reachable ' || vk_fail "not reachable: $out"

# The C program kills the sshd last: nothing runs after it.
"$prog"
vk_log "PASS"
