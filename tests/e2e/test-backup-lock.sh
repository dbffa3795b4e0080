#!/bin/bash
# End-to-end: the per-domain lock (issue 3).  While a slow backup of domain A
# runs, a second backup of A is refused at once (exit 4, a message naming A),
# and a backup of domain B, sharing the catalog, runs to the end.  Once A's
# backup is gone, A can be backed up again.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
a=vk-bk-lockA-$$-$RANDOM
b=vk-bk-lockB-$$-$RANDOM
vk_domain_create "$a" 512M 1
vk_fill_random "$(vk_domain_image "$a" vda)" 128M
vk_domain_create "$b" 256M 1
vk_domain_start "$a"
vk_domain_start "$b"
vk_domain_write "$b" vda 0xcd 64M 1M

vk_bk_start_bg "$a" --level full --target main --threads 1 --compress-level 19
vk_wait_for 30 vk_backup_job_active "$a" || {
    cat "$VK_BG_ERR" >&2
    vk_fail "the backup job of '$a' did not start"
}
cps=$(vk_checkpoints "$a" | tr '\n' ' ')

# A second backup of A: refused at once.
t0=$(date +%s%N)
vk_backup 4 "$a" --level full
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 5000 ] || vk_fail "the refusal took $ms ms"
vk_expect_grep "$VK_BK_ERR" "$a" "the refusal message"
kill -0 "$VK_BG_PID" 2>/dev/null || vk_fail "the first backup of '$a' ended: $(cat "$VK_BG_ERR")"
vk_backup_job_active "$a" || vk_fail "the refusal disturbed the running backup of '$a'"
vk_expect_eq "$(vk_checkpoints "$a" | tr '\n' ' ')" "$cps" "checkpoints of '$a' after the refusal"
for level in inc copy; do
    vk_backup 4 "$a" --level "$level"
done

# B in parallel.
vk_backup 0 "$b" --level full
vk_bk_check_committed "$b" full null
vk_archive_check "$VK_BK_TARGET/$b/$(vk_bk .backup)/vda.tar" "$((64 * M)):$M:0xcd"
kill -0 "$VK_BG_PID" 2>/dev/null ||
    vk_fail "the backup of '$a' ended before the one of '$b': the test proves nothing"

# End A's backup; the lock goes with it.
kill -INT "$VK_BG_PID"
vk_bg_wait 60
vk_expect_eq "$VK_BG_RC" 130 "exit status of the interrupted backup of '$a'"
vk_backup 0 "$a" --level full
vk_bk_check_committed "$a" full null
vk_log "PASS: second backup of $a refused, $b backed up in parallel"
