#!/bin/bash
# End-to-end: a backup worker of virtkeepd dies (kill -9, as the OOM killer
# or a crash would) in the middle of a full while the daemon keeps running.
# A domain whose 1 GiB disk holds random data; policy max_chain = 1 (every
# backup is a full), rpo = 20s; a committed full is made first.  Once the
# daemon's full is writing its archive, only the worker is killed.  Then,
# without a restart of the daemon:
#   - the daemon logs the signal, the job row is failed, and the backup row
#     becomes failed and recovered (it does not stay running);
#   - no libvirt job is left (virsh domjobinfo, backup-dumpxml), the killed
#     backup's checkpoint is gone and the committed full's is kept;
#   - the target holds only the committed full's objects (no partial
#     archive, temp file or directory);
#   - `virtkeep status --json`, answered by the daemon, counts 1 failure;
#   - after the back-off the daemon runs the next scheduled backup, which
#     commits;
#   - SIGTERM stops the daemon with exit status 0.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd sqlite3 setsid
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"

dom=vk-wkill-$$-$RANDOM
sock=$VK_SCRATCH/virtkeepd.sock
log=$VK_SCRATCH/virtkeepd.log
printf '\n[daemon]\nsocket = %s\n' "$sock" >>"$VK_BK_CONFIG"
printf '\n[policy wk]\nrpo = 20s\nmax_chain = 1\ntargets = main\n\n[domain %s]\npolicy = wk\n' \
    "$dom" >>"$VK_BK_CONFIG"

vk_domain_create "$dom" 1152M 1
vk_fill_random "$(vk_domain_image "$dom" vda)" 1G
vk_domain_start "$dom"

q() { sqlite3 -cmd '.timeout 5000' "$VK_BK_CATALOG" "$1"; }

vk_backup 0 "$dom" --level full
full1=$(vk_bk .backup)
cp_full1=$(vk_bk .checkpoint)
sleep 1

setsid "$VKD" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" --socket "$sock" \
    --tick 1 >"$log" 2>&1 &
DPID=$!
vk_on_exit "kill -9 -- -$DPID 2>/dev/null || true"
dlog() { sed 's/^/  virtkeepd: /' "$log" >&2; }

temp_big() { # a temp file of an archive in flight has passed 64 MiB
    find "$VK_BK_TARGET" -name '.*.vk-tmp-*' -size +64M | grep -q .
}
vk_wait_for 60 temp_big || {
    dlog
    vk_fail "virtkeepd did not start writing a backup within 60s"
}
job=$(q "SELECT id FROM jobs WHERE kind = 'backup' AND state = 'running'")
wpid=$(q "SELECT pid FROM jobs WHERE id = $job")
killed=$(q "SELECT id FROM backups WHERE status = 'running'")
cp_killed=$(q "SELECT checkpoint FROM backups WHERE id = '$killed'")
[ -n "$job" ] && [ -n "$wpid" ] && [ -n "$killed" ] && [ -n "$cp_killed" ] ||
    vk_fail "no running job and backup rows"
vk_expect_eq "$(q "SELECT pid FROM backups WHERE id = '$killed'")" "$wpid" "pid of the backup row"
[ "$wpid" != "$DPID" ] && kill -0 "$wpid" || vk_fail "the worker (pid $wpid) is not running"
kill -9 "$wpid"
vk_log "killed the worker ($wpid) of job $job during backup $killed"

# The daemon reaps the worker and recovers what it left, while it runs.
row_done() { [ "$(q "SELECT status FROM backups WHERE id = '$killed'")" != running ]; }
vk_wait_for 60 row_done || {
    dlog
    vk_fail "the killed worker's backup row stays running"
}
recovered() { q "SELECT error FROM backups WHERE id = '$killed'" | grep -q 'recovered$'; }
vk_wait_for 60 recovered || {
    dlog
    vk_fail "the killed backup was not recovered: $(q "SELECT error FROM backups WHERE id = '$killed'")"
}
kill -0 "$DPID" || vk_fail "virtkeepd is gone"
vk_expect_grep "$log" "killed by signal 9" "daemon log"
vk_expect_eq "$(q "SELECT status FROM backups WHERE id = '$killed'")" failed "killed backup row"
vk_expect_eq "$(q "SELECT state FROM jobs WHERE id = $job")" failed "state of the killed job"
q "SELECT error FROM jobs WHERE id = $job" | grep -q "signal 9" ||
    vk_fail "the killed job's error does not name the signal: $(q "SELECT error FROM jobs WHERE id = $job")"

# The retry (after min(rpo/4, 1 h) = 5 s from the failure) may already have
# begun: stop the daemon (no new job from here) and let a worker it started
# finish, so that what follows sees the killed backup's leftovers only.
kill -STOP "$DPID"
vk_on_exit "kill -CONT $DPID 2>/dev/null || true"
workers_done() { ! ps --ppid "$DPID" -o stat= | grep -qv '^Z'; }
vk_wait_for 120 workers_done || vk_fail "a worker of virtkeepd still runs after 120 s"
retries=$(q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
             WHERE d.name = '$dom' AND b.status = 'committed' AND b.id > '$killed'")
[ -z "$retries" ] || vk_log "the daemon's retry ran before the checks: $retries"

# No libvirt job, no orphan checkpoint, only committed objects on the target.
if vk_backup_job_active "$dom"; then vk_fail "a libvirt backup job is left"; fi
"${VK_VIRSH[@]}" domjobinfo "$dom" >"$VK_SCRATCH/jobinfo.txt" 2>&1 ||
    vk_fail "virsh domjobinfo failed: $(cat "$VK_SCRATCH/jobinfo.txt")"
vk_expect_grep "$VK_SCRATCH/jobinfo.txt" '^Job type: +None' "virsh domjobinfo"
if vk_has_line "$(vk_checkpoints "$dom")" "$cp_killed"; then
    vk_fail "the killed backup's checkpoint '$cp_killed' is left"
fi
if [ -z "$retries" ]; then
    vk_has_line "$(vk_checkpoints "$dom")" "$cp_full1" || vk_fail "the checkpoint of $full1 is gone"
fi
vk_expect_eq "$(q "SELECT count(*) FROM archive_locations WHERE backup_id = '$killed'")" 0 \
    "locations of the killed backup"
want=$(for b in "$full1" $retries; do printf '%s\n' "$dom/$b/manifest.json" "$dom/$b/vda.tar"; done |
    sort)
vk_expect_eq "$(vk_files "$VK_BK_TARGET")" "$want" "files under the target after recovery"
[ ! -e "$VK_BK_TARGET/$dom/$killed" ] || vk_fail "the killed backup's directory is left"

# The daemon's status counts the failure (until a backup succeeds).
kill -CONT "$DPID"
vk_vk status "$dom" --json >"$VK_SCRATCH/st.json" 2>"$VK_SCRATCH/st.err" || true
vk_expect_eq "$(jq -r .daemon "$VK_SCRATCH/st.json")" true "status answered by virtkeepd"
if [ -z "$retries" ]; then
    vk_expect_eq "$(jq -r '.domains[0].failures' "$VK_SCRATCH/st.json")" 1 "failures in status"
fi

# The domain is not stuck: after the back-off (min(rpo/4, 1 h)) the next
# scheduled backup runs and commits.
next_done() {
    [ -n "$(q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
               WHERE d.name = '$dom' AND b.status = 'committed' AND b.id > '$killed'")" ]
}
vk_wait_for 150 next_done || {
    dlog
    vk_fail "no scheduled backup of '$dom' committed after the killed one"
}
next=$(q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
          WHERE d.name = '$dom' AND b.status = 'committed' AND b.id > '$killed'")
vk_expect_eq "$(q "SELECT count(*) FROM jobs WHERE kind = 'backup' AND id > $job
                   AND state = 'succeeded'")" 1 "the daemon's backup job after the killed one"

kill -TERM "$DPID"
vk_wait_for 40 bash -c "! kill -0 $DPID" || vk_fail "virtkeepd did not stop on SIGTERM"
rc=0
wait "$DPID" || rc=$?
vk_expect_eq "$rc" 0 "exit status of virtkeepd on SIGTERM"
vk_log "PASS: worker of $killed killed (job $job), recovered while virtkeepd ran; $next committed"
