#!/bin/bash
# End-to-end: a backup killed while libvirtd still runs its
# virDomainBackupBegin is recovered only once that begin is over.
#
# libvirt admits a checkpoint delete beside a backup job.  A delete of the
# new checkpoint while the begin waits on QEMU's monitor frees it, and the
# begin's own finalize or rollback uses it again: libvirtd 9.0 crashes (the
# soak test of virtkeepd met this after a worker's SIGSEGV).  To hold the
# begin in that window, QEMU is stopped (SIGSTOP): the begin waits on its
# monitor with the checkpoint created and no backup data yet (the job stats
# fail with "backup job data missing", or time out waiting for the job).
# The worker is killed there, the next backup starts (it recovers the
# killed one first), and QEMU resumes.
# libvirtd must survive, the next backup must succeed, and no job or
# checkpoint of the killed backup may stay.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-bk-race-$$-$RANDOM
vk_domain_create "$dom" 64M 1
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0xab 0 1M

# The system libvirtd (session ones of other tests may run beside it).
lvd_pid() {
    local p
    p=$(cat /run/libvirtd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"
}
lvd=$(lvd_pid)
[ -n "$lvd" ] || vk_fail "no libvirtd runs"
qpid=$(vk_domain_qemu_pid "$dom")
vk_on_exit "kill -CONT $qpid 2>/dev/null || true"

# begin_in_flight: the begin created its checkpoint (listing checkpoints
# takes no domain job) and waits on the stopped QEMU (so the job stats would
# wait too).
begin_in_flight() {
    [ -n "$(comm -13 <(echo "$before") <(vk_checkpoints "$dom"))" ]
}

before=$(vk_checkpoints "$dom")
kill -STOP "$qpid"
vk_bk_start_bg "$dom" --level full --target main
killed=$VK_BG_PID
vk_wait_for 30 begin_in_flight || {
    kill -CONT "$qpid"
    cat "$VK_BG_ERR" >&2
    vk_fail "precondition: the backup's begin did not wait on the stopped QEMU"
}
kill -9 "$killed"
vk_bg_wait 10
vk_log "killed backup $killed while its virDomainBackupBegin waited on QEMU (pid $qpid, stopped)"

# The next backup: its recovery of the killed one must wait for the begin.
vk_bk_start_bg "$dom" --level full --target main
sleep 3
kill -0 "$VK_BG_PID" 2>/dev/null || {
    cat "$VK_BG_ERR" >&2
    vk_fail "the next backup ended while the killed one's begin was still in flight"
}
kill -CONT "$qpid"
vk_bg_wait 120
sed 's/^/  next backup: /' "$VK_BG_ERR" >&2
[ "$(lvd_pid)" = "$lvd" ] ||
    vk_fail "libvirtd (pid $lvd) did not survive the recovery (now: '$(lvd_pid)')"
[ "$VK_BG_RC" = 0 ] || vk_fail "the next backup failed (rc $VK_BG_RC)"
vk_expect_grep "$VK_BG_ERR" "recovering backup" "the next backup's log"
if vk_backup_job_active "$dom"; then vk_fail "a backup job of '$dom' is still active"; fi

# Exactly the checkpoints of committed backups are left.
want=$(sqlite3 "$VK_BK_CATALOG" \
    "SELECT b.checkpoint FROM backups b JOIN domains d ON d.id = b.domain_id
     WHERE d.name = '$dom' AND b.status = 'committed' ORDER BY 1")
have=$(vk_checkpoints "$dom" | sort)
[ "$have" = "$want" ] ||
    vk_fail "checkpoints of '$dom': '$(echo $have)', want those of committed backups: '$(echo $want)'"
vk_log "PASS: recovery waited for the killed backup's begin; libvirtd survived; no job or checkpoint left"
