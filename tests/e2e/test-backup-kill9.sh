#!/bin/bash
# End-to-end: `virtkeep backup` killed with kill -9 leaves its run
# directory (pull socket, scratch file) behind; recovery removes it:
#   1. the next `virtkeep backup` (of any domain) removes it before its own
#      run, and its own run directory is gone after it;
#   2. virtkeepd removes it at start (its recovery, then one pass: --once).
# Run directories of live processes are never touched (the backup of a
# second domain runs meanwhile).
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd sqlite3
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"
dom=vk-bk-k9-$$-$RANDOM
other=vk-bk-k9o-$$-$RANDOM
vk_domain_create "$dom" 512M 1
vk_domain_create "$other" 512M 1
# Random data at a high compression level: slow enough to be killed.
vk_fill_random "$(vk_domain_image "$dom" vda)" 64M
vk_fill_random "$(vk_domain_image "$other" vda)" 64M
vk_domain_start "$dom"
vk_domain_start "$other"

# kill_mid_backup: start a slow full of $dom, kill -9 it while its job
# runs; sets RUNDIR to the run directory it leaves.
kill_mid_backup() {
    vk_bk_start_bg "$dom" --level full --target main --threads 1 --compress-level 19
    vk_wait_for 30 vk_backup_job_active "$dom" || {
        cat "$VK_BG_ERR" >&2
        vk_fail "the backup job of '$dom' did not start"
    }
    RUNDIR=$(vk_backup_run_dir "$dom")
    kill -0 "$VK_BG_PID" 2>/dev/null || vk_fail "the backup ended too early"
    kill -9 "$VK_BG_PID"
    vk_bg_wait 30
    [ -d "$RUNDIR" ] || vk_fail "precondition: kill -9 left no run directory '$RUNDIR'"
    vk_log "kill -9 of backup $VK_BG_PID left '$RUNDIR' ($(ls -A "$RUNDIR" | tr '\n' ' '))"
}

# 1. The next backup, of another domain, while a third backup runs.
kill_mid_backup
vk_bk_start_bg "$other" --level full --target main --threads 1 --compress-level 19
live_pid=$VK_BG_PID
vk_wait_for 30 vk_backup_job_active "$other" || vk_fail "the backup job of '$other' did not start"
live_dir=$(vk_backup_run_dir "$other")
# The next backup of $dom: it recovers its domain (job aborted), then the
# run directories of dead processes.
vk_backup 0 "$dom" --level full --compress-level 1
[ ! -e "$RUNDIR" ] || vk_fail "the next backup left the killed one's run directory '$RUNDIR'"
[ -d "$live_dir" ] || vk_fail "the run directory '$live_dir' of a running backup was removed"
kill -0 "$live_pid" 2>/dev/null || vk_fail "the backup of '$other' stopped"
vk_backup_job_active "$other" || vk_fail "the backup job of '$other' was aborted"
kill -9 "$live_pid"
wait "$live_pid" 2>/dev/null || true
"${VK_VIRSH[@]}" domjobabort "$other" >/dev/null 2>&1 || true

# 2. virtkeepd at start.  Its worker would run `virtkeep backup`: keep the
#    configuration free of policies so that only recovery runs.
kill_mid_backup
"$VKD" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" --socket "$VK_SCRATCH/vkd.sock" \
    --once --log stderr >"$VK_SCRATCH/vkd.log" 2>&1 || {
    cat "$VK_SCRATCH/vkd.log" >&2
    vk_fail "virtkeepd --once failed"
}
sed 's/^/  virtkeepd: /' "$VK_SCRATCH/vkd.log" >&2
[ ! -e "$RUNDIR" ] || vk_fail "virtkeepd left the killed backup's run directory '$RUNDIR'"
if vk_backup_job_active "$dom"; then vk_fail "virtkeepd left the libvirt job of '$dom'"; fi
vk_expect_grep "$VK_SCRATCH/vkd.log" "removed run directory '$RUNDIR'" "the daemon's log"
vk_log "PASS: the run directories of killed backups were removed (CLI and virtkeepd)"
