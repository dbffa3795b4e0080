#!/bin/bash
# End-to-end: the libvirt connection of a running backup is dropped
# (`virt-admin client-disconnect`, as when libvirtd goes away).  The next
# write to the dead socket must not kill virtkeep with SIGPIPE (exit 141,
# nothing printed, the catalog row left 'running'): it must fail with a
# clear message that names the domain, what failed and what to do, and
# record the row as failed.  The next backup then works.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd virt-admin sqlite3
dom=vk-bk-pipe-$$-$RANDOM
vk_domain_create "$dom" 512M 1
# Random data at a high compression level: the backup lasts long enough
# to find its libvirt client and drop it while the disk is read.
vk_fill_random "$(vk_domain_image "$dom" vda)" 64M
vk_domain_start "$dom"

# The libvirtd client id of process PID (virt-admin client-info).
client_of() {
    local id info
    for id in $(virt-admin srv-clients-list libvirtd | awk 'NR > 2 && $1 ~ /^[0-9]+$/ {print $1}'); do
        info=$(virt-admin client-info libvirtd "$id" 2>/dev/null) || continue
        if grep -Eq "^unix_process_id *: *$1\$" <<<"$info"; then
            echo "$id"
            return 0
        fi
    done
    return 1
}

row_status() {
    sqlite3 "$VK_BK_CATALOG" "SELECT b.status FROM backups b JOIN domains d ON d.id = b.domain_id
        WHERE d.name = '$dom' ORDER BY b.started DESC, b.rowid DESC LIMIT 1"
}

cps=$(vk_checkpoints "$dom" | tr '\n' ' ')
vk_bk_start_bg "$dom" --level full --target main --threads 1 --compress-level 19
vk_wait_for 30 vk_backup_job_active "$dom" || {
    cat "$VK_BG_ERR" >&2
    vk_fail "the backup job of '$dom' did not start"
}
rundir=$(vk_backup_run_dir "$dom")
client=$(client_of "$VK_BG_PID") || vk_fail "no libvirtd client of the backup (pid $VK_BG_PID)"
kill -0 "$VK_BG_PID" 2>/dev/null || vk_fail "the backup ended too early: make it larger"
virt-admin client-disconnect libvirtd "$client" >/dev/null ||
    vk_fail "cannot disconnect libvirtd client $client"
vk_log "disconnected libvirtd client $client of the backup (pid $VK_BG_PID)"
vk_bg_wait 300
sed 's/^/  stderr: /' "$VK_BG_ERR" >&2

[ "$VK_BG_RC" != 141 ] || vk_fail "the backup was killed by SIGPIPE (exit 141)"
[ "$VK_BG_RC" = 1 ] || vk_fail "exit status after the disconnect: $VK_BG_RC, expected 1"
vk_expect_grep "$VK_BG_ERR" "domain '$dom'" "the error names the domain"
vk_expect_grep "$VK_BG_ERR" "connection to libvirt.*(lost|closed)" "the error says what failed"
vk_expect_grep "$VK_BG_ERR" "run the backup again" "the error says what to do"
st=$(row_status)
[ "$st" != running ] || vk_fail "the catalog row of the backup is left 'running'"
vk_expect_eq "$st" failed "catalog status of the disconnected backup"

# The cleanup went through a new connection: no job, no new checkpoint,
# no run directory.  The next backup works.
vk_backup_job_ended "$dom" || vk_fail "a libvirt backup job is left on '$dom'"
vk_expect_eq "$(vk_checkpoints "$dom" | tr '\n' ' ')" "$cps" "checkpoints after the disconnect"
[ ! -e "$rundir" ] || vk_fail "the run directory '$rundir' is left: $(ls -a "$rundir")"
vk_backup 0 "$dom" --level full --compress-level 1
vk_bk_check_committed "$dom" full null
vk_log "PASS: a dropped libvirt connection failed the backup cleanly (exit $VK_BG_RC)"
