#!/bin/bash
# A backup to an ssh:// target whose link goes dead mid-upload: the harness
# sshd behind tests/lib/tcp-fault-proxy.py, slowed so that the upload of
# vda.tar takes a while, then stalled.  The put gives up after its attempts
# (I/O timeout 2 s, $VIRTKEEP_SSH_TIMEOUT) and the backup fails; its temp
# file (.vda.tar.vk-tmp-*) cannot be removed over the dead link.  With the
# link back, the recovery that the next backup of the domain runs removes
# it: no .vk-tmp-* anywhere on the server, nothing of the failed backup
# left, and the new backup committed.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd python3 find
vk_start_sshd
dom=vk-bk-sshgu-$$-$RANDOM
vk_domain_create "$dom" 256M 1
vk_fill_random "$(vk_domain_image "$dom" vda)" 48M
vk_domain_start "$dom"

pf=$VK_SCRATCH/proxy.ports
python3 "$abs_top_srcdir/tests/lib/tcp-fault-proxy.py" "$pf" 127.0.0.1 "$VK_SSH_PORT" \
    >>"$VK_SCRATCH/proxy.log" 2>&1 &
proxy_pid=$!
vk_on_exit "vk_kill $proxy_pid"
vk_wait_for 20 test -s "$pf" || vk_fail "the fault proxy did not start: $(cat "$VK_SCRATCH/proxy.log")"
read -r proxy_port proxy_ctl <"$pf"
# known_hosts names the proxy's port: the host key is the sshd's.
echo "[127.0.0.1]:$proxy_port $(cut -d' ' -f1,2 "$VK_SSH_DIR/host_key.pub")" \
    >>"$VK_SSH_KNOWN_HOSTS"

# proxy CMD: one command to the proxy's control port; it answers "ok".
proxy() {
    local reply
    exec 9<>"/dev/tcp/127.0.0.1/$proxy_ctl" || vk_fail "cannot reach the proxy's control port"
    echo "$*" >&9
    read -r reply <&9 || true
    exec 9>&-
    [ "$reply" = ok ] || vk_fail "proxy '$*': $reply"
}

sshdir=$VK_SCRATCH/ssh-target
mkdir -p "$sshdir"
cat >>"$VK_BK_CONFIG" <<EOF

[target offsite]
url = ssh://$VK_SSH_USER@127.0.0.1:$proxy_port$sshdir
key_file = $VK_SSH_KEY
known_hosts = $VK_SSH_KNOWN_HOSTS
EOF

temps() { find "$sshdir" -name '*.vk-tmp-*' -printf '%P %s\n' | sort; }
temp_big() { find "$sshdir" -name '*.vk-tmp-*' -size +4M | grep -q .; }

proxy slow 4000000 0
export VIRTKEEP_SSH_TIMEOUT=2
vk_bk_start_bg "$dom" --level full --target offsite
vk_wait_for 60 temp_big || vk_fail "no upload of more than 4 MiB began: $(temps)"
proxy stall
vk_log "the link stalls with $(temps) on the server"
vk_bg_wait 150
[ "$VK_BG_RC" = 1 ] || {
    sed 's/^/  | /' "$VK_BG_ERR" >&2
    vk_fail "the backup over the dead link exited with $VK_BG_RC, expected 1"
}
grep -Eqi "giving up|timeout" "$VK_BG_ERR" || {
    sed 's/^/  | /' "$VK_BG_ERR" >&2
    vk_fail "the error of the backup does not say that the put gave up"
}
failed=$(vk_vk list "$dom" --json | jq -r '.backups[] | select(.status == "failed") | .id')
[ -n "$failed" ] || vk_fail "no failed backup in the catalog"
vk_log "after the failed backup $failed, with the link dead: $(temps | tr '\n' ' ')"

# The link is back: the next backup recovers the failed one first.
proxy pass
vk_backup 0 "$dom" --level full --target offsite
left=$(temps)
[ -z "$left" ] || vk_fail "temp files left on the server after the recovery: $left"
[ ! -e "$sshdir/$dom/$failed" ] || vk_fail "the directory of the failed backup $failed is left: \
$(find "$sshdir/$dom/$failed")"
VK_BK_TARGET_DIR=$sshdir vk_bk_check_committed "$dom" full null
vk_expect_eq "$(cd "$sshdir" && find . -type f | sort | tr '\n' ' ')" \
    "./$dom/$(vk_bk .backup)/manifest.json ./$dom/$(vk_bk .backup)/vda.tar " \
    "files on the server"
vk_log "PASS: the put gave up over a dead link; the next backup removed its temp file"
