#!/usr/bin/env bash
# virtkeep - an aborted migration leaves the domain running on the source:
# (1) SIGINT midway, (2) a bandwidth cap that cannot finish within --timeout.
# Both are made slow with --copy-storage of 24 MiB of guest data at 1 MiB/s.
# Afterwards the domain runs on the source with its data, nothing of it is
# on the destination (no domain, no image left), and the catalog job is
# cancelled (SIGINT) or failed (timeout).
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"
vk_mig_setup

dstdir=$VK_SCRATCH/host-dst/images

# The domain's migration job on the source is running.
job_active() {
    vk_mig_virsh src domjobinfo "$1" 2>/dev/null | grep -q '^Job type: *Unbounded'
}

check_stayed() {
    local name=$1
    [ "$(vk_mig_state src "$name")" = running ] ||
        vk_fail "'$name' does not run on the source: $(vk_mig_state src "$name")"
    [ "$(vk_mig_persistent src "$name")" = yes ] || vk_fail "'$name' is no longer persistent on the source"
    [ "$(vk_mig_state dst "$name")" = absent ] || vk_fail "'$name' exists on the destination"
    [ ! -e "$dstdir/$name-vda.qcow2" ] || vk_fail "the destination image of '$name' was left behind"
    ! job_active "$name" || vk_fail "the migration job of '$name' is still active on the source"
    vk_mig_check src "$name" 0xcd 0 24M
    [ "$(vk_mig_out .aborted)" = true ] || vk_fail "the result of '$name' does not say aborted"
    [ "$(vk_mig_out .source_running)" = true ] || vk_fail "the result of '$name' does not say it still runs"
}

slow_domain() {
    vk_mig_domain src "$1" 64 64M "$VK_SCRATCH/srcimages"
    vk_mig_virsh src start "$1" >/dev/null
    vk_mig_write src "$1" 0xcd 0 24M
}

# --- (1) SIGINT midway ------------------------------------------------------
slow_domain sigint
VK_MIG_OUT=$VK_SCRATCH/sigint.json
VK_MIG_ERR=$VK_SCRATCH/sigint.err
"$VK_BIN" --config "$VK_MIG_CONFIG" --catalog "$VK_MIG_CATALOG" -c "$VK_MIG_SRC" migrate sigint \
    --to "$VK_MIG_DST" --migrate-uri tcp://127.0.0.1 --copy-storage --dest-dir "$dstdir" \
    --bandwidth 1 --json >"$VK_MIG_OUT" 2>"$VK_MIG_ERR" &
pid=$!
vk_on_exit "kill $pid 2>/dev/null || true"
vk_wait_for 30 job_active sigint || vk_fail "the migration of 'sigint' did not start: $(cat "$VK_MIG_ERR")"
sleep 2
[ -e "$dstdir/sigint-vda.qcow2" ] || vk_fail "no destination image while migrating"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || vk_fail "virtkeep migrate exited with $rc after SIGINT, expected 130: $(cat "$VK_MIG_ERR")"
jq -e . "$VK_MIG_OUT" >/dev/null || vk_fail "no JSON after SIGINT"
check_stayed sigint
grep -q 'aborted (interrupted)' "$VK_MIG_ERR" || vk_fail "stderr does not say interrupted: $(cat "$VK_MIG_ERR")"
job=$(vk_mig_out .job)
[ "$(vk_mig_sql "SELECT kind, state FROM jobs WHERE id = $job")" = "migrate|cancelled" ] ||
    vk_fail "the catalog job of the interrupted migration is not cancelled"

# --- (2) cannot finish at 1 MiB/s within 3 s ---------------------------------
slow_domain capped
vk_migrate 1 capped --to "$VK_MIG_DST" --migrate-uri tcp://127.0.0.1 --copy-storage \
    --dest-dir "$dstdir" --bandwidth 1 --timeout 3
check_stayed capped
vk_mig_out .error | grep -q 'aborted (timed out)' || vk_fail "the error does not say timed out"
awk -v s="$(vk_mig_out .seconds)" 'BEGIN { exit !(s >= 3 && s < 20) }' ||
    vk_fail "the capped migration took $(vk_mig_out .seconds) s, expected an abort after 3 s"
job=$(vk_mig_out .job)
row=$(vk_mig_sql "SELECT kind, state, error LIKE '%timed out%' FROM jobs WHERE id = $job")
[ "$row" = "migrate|failed|1" ] || vk_fail "the catalog job of the capped migration is '$row'"

# Both domains can still migrate afterwards (nothing stale blocks them).
vk_migrate 0 capped --to "$VK_MIG_DST" --migrate-uri tcp://127.0.0.1 --copy-storage \
    --dest-dir "$dstdir"
[ "$(vk_mig_state dst capped)" = running ] || vk_fail "'capped' did not migrate after the abort"
vk_mig_check dst capped 0xcd 0 24M
vk_log "PASS"
