#!/bin/bash
# End-to-end: virtkeepd killed with kill -9 mid-backup (issue 7).
# A domain whose 1 GiB disk holds random data; virtkeepd (policy max_chain
# = 1: every backup is a full) starts a full after a committed one; the
# daemon and its worker (the whole process group) are killed with kill -9
# while the archive is being written.  After a restart of virtkeepd:
#   - the job is marked failed, the backup row failed (and recovered);
#   - the libvirt backup job is gone, the killed backup's checkpoint is gone
#     (its bitmap merged into the previous one);
#   - no partial archive, temp file or directory of the killed backup is
#     left under the target: it holds exactly the committed backup's objects;
#   - no lock is held: a `virtkeep backup --level inc` of the domain runs,
#     on the committed full, and holds exactly what was written since that
#     full, before and after the kill;
#   - `virtkeep verify` passes and a restore equals the reference image.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd sqlite3 setsid
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"

dom=vk-dcrash-$$-$RANDOM
G=$((1 << 30))
printf '\n[policy crash]\nrpo = 20s\nmax_chain = 1\ntargets = main\n\n[domain %s]\npolicy = crash\n' \
    "$dom" >>"$VK_BK_CONFIG"
sock=$VK_SCRATCH/virtkeepd.sock
ref=$VK_SCRATCH/reference.raw

# The disk: 1 GiB of random data (the reference keeps a copy of every byte).
vk_domain_create "$dom" 1152M 1
img=$(vk_domain_image "$dom" vda)
head -c $G /dev/urandom >"$ref"
truncate -s 1152M "$ref"
qemu-img convert -n -f raw -O qcow2 "$ref" "$img"
vk_domain_start "$dom"

# ref_write PATTERN OFFSET_MIB LEN_MIB: write to the guest and the reference.
ref_write() {
    vk_domain_write "$dom" vda "$1" "$2M" "$3M"
    python3 - "$ref" "$1" "$2" "$3" <<'EOF'
import sys
path, pat, off, ln = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3]), int(sys.argv[4])
with open(path, "r+b") as f:
    f.seek(off << 20)
    f.write(bytes([pat]) * (ln << 20))
EOF
}

q() { sqlite3 -cmd '.timeout 5000' "$VK_BK_CATALOG" "$1"; }

# A committed full first (the chain the killed backup would have replaced).
vk_backup 0 "$dom" --level full
full1=$(vk_bk .backup)
cp_full1=$(vk_bk .checkpoint)
ref_write 0x5a 1100 2
sleep 1

# daemon_start LOG: virtkeepd in its own process group; sets DPID.
daemon_start() {
    setsid "$VKD" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" --socket "$sock" \
        --tick 1 >"$VK_SCRATCH/$1" 2>&1 &
    DPID=$!
    vk_on_exit "kill -9 -- -$DPID 2>/dev/null || true"
}
temp_big() { # a temp file of an archive in flight has passed 64 MiB
    find "$VK_BK_TARGET" -name '.*.vk-tmp-*' -size +64M | grep -q .
}

daemon_start daemon1.log
vk_wait_for 60 temp_big || {
    cat "$VK_SCRATCH/daemon1.log" >&2
    vk_fail "virtkeepd did not start writing a backup within 60s"
}
job=$(q "SELECT id FROM jobs WHERE kind = 'backup' AND state = 'running'")
wpid=$(q "SELECT pid FROM jobs WHERE id = $job")
killed=$(q "SELECT id FROM backups WHERE status = 'running'")
cp_killed=$(q "SELECT checkpoint FROM backups WHERE id = '$killed'")
[ -n "$job" ] && [ -n "$wpid" ] && [ -n "$killed" ] || vk_fail "no running job and backup rows"
[ "$wpid" != "$DPID" ] && kill -0 "$wpid" || vk_fail "the worker (pid $wpid) is not running"
kill -9 -- "-$DPID"
vk_wait_for 10 bash -c "! kill -0 $wpid && ! kill -0 $DPID" || vk_fail "processes survived kill -9"
vk_log "killed virtkeepd ($DPID) and its worker ($wpid) during backup $killed"
# What recovery must clean up is really there.
vk_backup_job_active "$dom" || vk_fail "the killed backup left no libvirt job to recover from"
[ -n "$(find "$VK_BK_TARGET/$dom/$killed" -name '.*.vk-tmp-*')" ] || vk_fail "no temp file left"
vk_has_line "$(vk_checkpoints "$dom")" "$cp_killed" || vk_fail "no checkpoint of the killed backup"
vk_expect_eq "$(q "SELECT state FROM jobs WHERE id = $job")" running "job row before the restart"

# Restart: recovery comes before any job.  The killed backup counts as a
# failure, so the scheduler backs off (RPO/4: 5s) before its next attempt: the
# daemon is stopped (SIGTERM, exit 0) once it has recovered, and the next
# backup is an incremental run by the CLI on the chain of the committed
# full, which shows that the killed backup's bitmap was merged back.
ref_write 0x6b 1120 3
sleep 1
daemon_start daemon2.log
recovered() { grep -q 'recovered 1 interrupted backup' "$VK_SCRATCH/daemon2.log"; }
vk_wait_for 60 recovered || {
    cat "$VK_SCRATCH/daemon2.log" >&2
    vk_fail "virtkeepd did not recover the killed backup after the restart"
}
kill -TERM "$DPID"
vk_wait_for 40 bash -c "! kill -0 $DPID" || vk_fail "virtkeepd did not stop on SIGTERM"
wait "$DPID" || vk_fail "virtkeepd exited with status $? on SIGTERM"
sed 's/^/  virtkeepd: /' "$VK_SCRATCH/daemon2.log" >&2

vk_expect_eq "$(q "SELECT state FROM jobs WHERE id = $job")" failed "state of the killed job"
[ -n "$(q "SELECT error FROM jobs WHERE id = $job")" ] || vk_fail "the killed job has no error"
vk_expect_eq "$(q "SELECT count(*) FROM jobs")" 1 "jobs after the restart (none started)"
vk_expect_eq "$(q "SELECT status FROM backups WHERE id = '$killed'")" failed "killed backup row"
q "SELECT error FROM backups WHERE id = '$killed'" | grep -q 'recovered$' ||
    vk_fail "the killed backup was not recovered: $(q "SELECT error FROM backups WHERE id = '$killed'")"
vk_expect_eq "$(q "SELECT count(*) FROM archive_locations WHERE backup_id = '$killed'")" 0 \
    "locations of the killed backup"
if vk_backup_job_active "$dom"; then vk_fail "a libvirt backup job is left"; fi
if vk_has_line "$(vk_checkpoints "$dom")" "$cp_killed"; then
    vk_fail "the killed backup's checkpoint '$cp_killed' is left"
fi
vk_has_line "$(vk_checkpoints "$dom")" "$cp_full1" || vk_fail "the checkpoint of $full1 is gone"
want=$(printf '%s\n' "$dom/$full1/manifest.json" "$dom/$full1/vda.tar" | sort)
vk_expect_eq "$(vk_files "$VK_BK_TARGET")" "$want" "files under the target after recovery"
[ ! -e "$VK_BK_TARGET/$dom/$killed" ] || vk_fail "the killed backup's directory is left"

# No lock is held, and the chain goes on correctly from the committed full:
# the incremental holds what was written before and after the kill.
ref_write 0x7c 1130 1
sleep 1
vk_backup 0 "$dom" --level inc
vk_bk_check_committed "$dom" inc "$full1"
inc=$(vk_bk .backup)
vk_archive_check "$VK_BK_TARGET/$dom/$inc/vda.tar" "$((1100 * M)):$((2 * M)):0x5a" \
    "$((1120 * M)):$((3 * M)):0x6b" "$((1130 * M)):$M:0x7c"
vk_vk verify "$inc" >"$VK_SCRATCH/verify.out" 2>&1 || {
    cat "$VK_SCRATCH/verify.out" >&2
    vk_fail "verify of $inc failed"
}
dest=$VK_SCRATCH/restored
vk_vk restore "$dom" --backup "$inc" --dest "$dest" >"$VK_SCRATCH/restore.out" 2>&1 || {
    cat "$VK_SCRATCH/restore.out" >&2
    vk_fail "restore of $inc failed"
}
qemu-img compare -q -f qcow2 -F raw "$dest/vda.qcow2" "$ref" ||
    vk_fail "the restored disk differs from the reference"
vk_log "PASS: $full1 | $killed killed (job $job) and recovered | $inc restored identical"
