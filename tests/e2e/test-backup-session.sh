#!/bin/bash
# End-to-end: virtkeep run as an unprivileged user ($VK_MIG_USER, see
# tests/migrate-lib.sh) against that user's session libvirtds.  Its run
# directories (pull socket, scratch files) go to $XDG_RUNTIME_DIR/virtkeep,
# not /var/lib/virtkeep/run, which such a user cannot write:
#   1. `virtkeep backup` (full, then inc) of a running session domain;
#   2. `virtkeep migrate --planned` of it to a second session daemon.
# The run directory exists while the backup runs and is gone after it.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"

vk_require_cmd jq
vk_mig_setup
user=$VK_SCRATCH/user
mkdir -p "$user/target"
chown -R "$VK_MIG_USER:" "$user"
cat >"$user/virtkeep.conf" <<EOF
[catalog]
path = $user/catalog.db

[target main]
url = file://$user/target
EOF
chown "$VK_MIG_USER:" "$user/virtkeep.conf"
run=$VK_SCRATCH/host-src/run/virtkeep
pooldir=$VK_SCRATCH/host-dst/pool
mkdir -p "$pooldir"
chown "$VK_MIG_USER:" "$pooldir"
vk_mig_virsh dst pool-define-as default dir --target "$pooldir" >/dev/null
vk_mig_virsh dst pool-start default >/dev/null

dom=vks$$
vk_mig_domain src "$dom" 64 256M
vk_mig_virsh src start "$dom" >/dev/null
vk_mig_write src "$dom" 0xcd 1M 1M
system_before=$(ls /var/lib/virtkeep/run 2>/dev/null | sort || true)

# vk_user WANT_RC ARGS...: virtkeep ARGS --json as the user, in the source
# host's environment (HOME, XDG_RUNTIME_DIR, ...), on the source daemon.
N=0
vk_user() {
    local want=$1 rc=0
    shift
    N=$((N + 1))
    OUT=$user/out-$N.json
    ERR=$VK_SCRATCH/err-$N
    vk_mig_as src timeout 120 "$VK_BIN" --config "$user/virtkeep.conf" -c "$VK_MIG_SRC" "$@" \
        --json >"$OUT" 2>"$ERR" || rc=$?
    if [ "$rc" != "$want" ]; then
        sed 's/^/  stderr: /' "$ERR" >&2
        vk_fail "virtkeep $* as $VK_MIG_USER: exit status $rc, expected $want"
    fi
}

# 1. Backups.  A slow watcher records the run directory while the full runs.
(
    for _ in $(seq 1 600); do
        ls -d "$run"/vk-*/ 2>/dev/null && exit 0
        sleep 0.05
    done
) >"$VK_SCRATCH/seen" &
watch=$!
vk_user 0 backup "$dom" --level full --target main
wait "$watch" || true
[ "$(jq -r .status "$OUT")" = committed ] || vk_fail "the full is not committed: $(cat "$OUT")"
full=$(jq -r .backup "$OUT")
[ -s "$VK_SCRATCH/seen" ] || vk_fail "no run directory appeared under '$run' during the backup"
vk_log "run directory during the backup: $(cat "$VK_SCRATCH/seen")"
[ "$(stat -c '%U %a' "$run")" = "$VK_MIG_USER 700" ] ||
    vk_fail "'$run' is $(stat -c '%U %a' "$run"), expected $VK_MIG_USER 700"
left=$(find "$run" -mindepth 1 -maxdepth 1 -name 'vk-*')
[ -z "$left" ] || vk_fail "run directories left after the backup: $left"
[ -f "$user/target/$dom/$full/vda.tar" ] || vk_fail "no archive of $full on the target"

vk_mig_write src "$dom" 0xab 8M 1M
sleep 1
vk_user 0 backup "$dom" --level inc --target main
[ "$(jq -r .level "$OUT")" = inc ] || vk_fail "the second backup is not an inc: $(cat "$OUT")"
[ "$(jq -r .parent "$OUT")" = "$full" ] || vk_fail "the inc's parent is not $full"

# 2. A planned move to the other session daemon, through backups.
vk_mig_write src "$dom" 0x5a 20M 1M
vk_user 0 migrate "$dom" --to "$VK_MIG_DST" --planned --via main --shutdown-timeout 2 --force
[ "$(jq -r .ok "$OUT")" = true ] || vk_fail "the planned move did not report ok: $(cat "$OUT")"
[ "$(vk_mig_state dst "$dom")" = running ] || vk_fail "'$dom' does not run on the destination"
vk_mig_check dst "$dom" 0xcd 1M 1M
vk_mig_check dst "$dom" 0xab 8M 1M
vk_mig_check dst "$dom" 0x5a 20M 1M
left=$(find "$run" -mindepth 1 -maxdepth 1 -name 'vk-*')
[ -z "$left" ] || vk_fail "run directories left after the move: $left"

# Nothing of the user's went to the system place.
system_after=$(ls /var/lib/virtkeep/run 2>/dev/null | sort || true)
new=$(comm -13 <(echo "$system_before") <(echo "$system_after") | sed '/^$/d')
for d in $new; do
    [ "$(stat -c %U "/var/lib/virtkeep/run/$d" 2>/dev/null)" != "$VK_MIG_USER" ] ||
        vk_fail "a run directory of $VK_MIG_USER in /var/lib/virtkeep/run: $d"
done
vk_log "PASS: $VK_MIG_USER backed up (full $full, inc) and moved '$dom' with run directories in '$run'"
