#!/bin/bash
# End-to-end: a large backup interrupted by SIGINT, then another by SIGTERM
# (issue 3).  Each must exit 130 and leave the clean state:
#   its catalog row failed; nothing new on the target, not even a hidden
#   temp file; no libvirt job; its run directory (socket, scratch) gone;
#   no new checkpoint, in libvirt or as a QEMU bitmap;
# and the next inc works, chained to the last committed backup.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=vk-bk-int-$$-$RANDOM
vk_domain_create "$dom" 512M 1
# Random data compresses slowly at a high level: the backup below lasts
# about two minutes unless interrupted.
vk_fill_random "$(vk_domain_image "$dom" vda)" 128M
vk_domain_start "$dom"

vk_backup 0 "$dom" --level full
vk_bk_check_committed "$dom" full null
last=$(vk_bk .backup)
vk_archive_check "$VK_BK_TARGET/$dom/$last/vda.tar" "0:$((128 * M)):random"

# interrupt SIGNAL: run a slow full, send SIGNAL a second after its libvirt
# job started, and check what it leaves behind.
interrupt() {
    local sig=$1 cps bitmaps files ids rundir new t0
    cps=$(vk_checkpoints "$dom" | tr '\n' ' ')
    bitmaps=$(vk_qemu_bitmaps "$dom" | tr '\n' ' ')
    files=$(vk_files "$VK_BK_TARGET" | tr '\n' ' ')
    vk_list "$dom"
    ids=$(vk_list_ids | tr '\n' ' ')

    vk_bk_start_bg "$dom" --level full --target main --threads 1 --compress-level 19
    vk_wait_for 30 vk_backup_job_active "$dom" || {
        cat "$VK_BG_ERR" >&2
        vk_fail "the backup job of '$dom' did not start"
    }
    rundir=$(vk_backup_run_dir "$dom")
    sleep 1
    kill -0 "$VK_BG_PID" 2>/dev/null || vk_fail "the backup ended before $sig: make it larger"
    t0=$(date +%s%N)
    kill -"$sig" "$VK_BG_PID"
    vk_bg_wait 60
    vk_log "the backup exited $((($(date +%s%N) - t0) / 1000000)) ms after SIG$sig"
    [ "$VK_BG_RC" = 130 ] || {
        sed 's/^/  stderr: /' "$VK_BG_ERR" >&2
        vk_fail "exit status after $sig: $VK_BG_RC, expected 130"
    }

    # The catalog: one new row, failed.
    vk_list "$dom"
    new=$(comm -13 <(echo "$ids" | tr ' ' '\n' | sed '/^$/d') <(vk_list_ids))
    [ "$(echo "$new" | grep -c .)" = 1 ] || vk_fail "after $sig the catalog has new rows: '$new'"
    vk_expect_eq "$(vk_list_get "$new" status)" failed "status of the interrupted backup $new"
    [ -n "$(vk_list_get "$new" error)" ] && [ "$(vk_list_get "$new" error)" != null ] ||
        vk_fail "the interrupted backup $new has no error recorded"
    vk_expect_eq "$(vk_list_get "$last" status)" committed "status of $last after $sig"

    # The target, libvirt, QEMU, the run directory.
    vk_expect_eq "$(vk_files "$VK_BK_TARGET" | tr '\n' ' ')" "$files" "files on the target after $sig"
    vk_backup_job_ended "$dom" || vk_fail "a libvirt job is left after $sig"
    [ ! -e "$rundir" ] || vk_fail "the run directory '$rundir' is left after $sig: $(ls -a "$rundir")"
    vk_expect_eq "$(vk_checkpoints "$dom" | tr '\n' ' ')" "$cps" "checkpoints after $sig"
    vk_expect_eq "$(vk_qemu_bitmaps "$dom" | tr '\n' ' ')" "$bitmaps" "QEMU bitmaps after $sig"
    pgrep -f "qemu-nbd.*$dom" >/dev/null && vk_fail "a qemu-nbd is left after $sig"

    # The next inc works and chains to the last committed backup.
    vk_domain_write "$dom" vda "$2" 300M 1M
    vk_backup 0 "$dom" --level inc
    vk_bk_check_committed "$dom" inc "$last"
    vk_expect_eq "$(vk_bk '.disks[0].data_bytes')" "$M" "data bytes of the inc after $sig"
    vk_archive_check "$VK_BK_TARGET/$dom/$(vk_bk .backup)/vda.tar" "$((300 * M)):$M:$2"
    last=$(vk_bk .backup)
}

interrupt INT 0xcd
interrupt TERM 0xab
vk_log "PASS: SIGINT and SIGTERM left a clean state; the chain ends at $last"
