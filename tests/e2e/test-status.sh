#!/bin/bash
# End-to-end test of `virtkeep status` without a daemon: real backups of a
# small running domain on a file:// target, then
#   - `status DOMAIN --json` says virtkeepd is not running (stderr, and
#     "daemon": false) and its values agree with `virtkeep list --json`:
#     the latest committed backup, its start time, the chain length, the
#     exposure measured from it; exit 0 when the objectives are met;
#   - a domain that was never backed up shows the RPO violation with its
#     reason, and the exit status is 6 (also in the table, "VIOLATED");
#   - `virtkeep jobs --json` falls back to the catalog the same way;
#   - `virtkeep jobs cancel 1` without a daemon fails (exit 1) naming it.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq

dom=vk-status-$$-$RANDOM
never=vk-never-$$-$RANDOM
printf '\n[daemon]\nsocket = %s/nobody.sock\n' "$VK_SCRATCH" >>"$VK_BK_CONFIG"
printf '\n[policy gold]\nrpo = 1h\nrto = 7d\ntargets = main\n' >>"$VK_BK_CONFIG"
printf '\n[domain %s]\npolicy = gold\n\n[domain %s]\npolicy = gold\n' "$dom" "$never" \
    >>"$VK_BK_CONFIG"
vk_domain_create "$dom" 16M 1
vk_domain_start "$dom"

vk_domain_write "$dom" vda 0xa1 0 1M
vk_backup 0 "$dom" --level full
vk_domain_write "$dom" vda 0xa2 $((2 * M)) 1M
vk_backup 0 "$dom" --level inc
vk_list "$dom"
last=$(jq -r '[.backups[] | select(.status == "committed")] | sort_by(.started, .id) | last | .id' \
    "$VK_SCRATCH/list.json")
started=$(vk_list_get "$last" started)
ncommitted=$(vk_list_ids committed | wc -l)

# ---- one domain, objectives met ------------------------------------------
rc=0
before=$(date +%s)
vk_vk status "$dom" --json >"$VK_SCRATCH/st.json" 2>"$VK_SCRATCH/st.err" || rc=$?
after=$(date +%s)
vk_expect_eq "$rc" 0 "exit status of status $dom"
vk_expect_grep "$VK_SCRATCH/st.err" "virtkeepd is not running" "status stderr"
st() { jq -r --arg d "$1" ".domains[] | select(.domain == \$d) | $2" "$VK_SCRATCH/st.json"; }
vk_expect_eq "$(jq -r .daemon "$VK_SCRATCH/st.json")" false "daemon"
vk_expect_eq "$(jq -r '.domains | length' "$VK_SCRATCH/st.json")" 1 "domains shown"
vk_expect_eq "$(st "$dom" .last_backup)" "$last" "last good backup"
vk_expect_eq "$(st "$dom" .last_success)" "$started" "last success time"
vk_expect_eq "$(st "$dom" .chain_length)" "$ncommitted" "chain length"
vk_expect_eq "$(st "$dom" .rpo)" 3600 "rpo objective"
vk_expect_eq "$(st "$dom" .rpo_violated)" false "rpo violated"
vk_expect_eq "$(st "$dom" .rto_violated)" false "rto violated"
vk_expect_eq "$(st "$dom" .failures)" 0 "failures"
exposure=$(st "$dom" .rpo_exposure)
[ "$exposure" -ge $((before - started)) ] && [ "$exposure" -le $((after - started)) ] ||
    vk_fail "exposure $exposure is not now - $started"
[ "$(st "$dom" .rto_estimate)" != null ] || vk_fail "no RTO estimate for a chain"
vk_expect_eq "$(st "$dom" .next_job.kind)" inc "next job"

# ---- every domain: the one never backed up violates its RPO ---------------
rc=0
vk_vk status --json >"$VK_SCRATCH/st.json" 2>"$VK_SCRATCH/st.err" || rc=$?
vk_expect_eq "$rc" 6 "exit status with a violated objective"
vk_expect_eq "$(jq -r '.domains | length' "$VK_SCRATCH/st.json")" 2 "domains shown"
vk_expect_eq "$(st "$never" .last_backup)" null "last backup of $never"
vk_expect_eq "$(st "$never" .rpo_violated)" true "rpo violated for $never"
vk_expect_eq "$(st "$never" .rpo_exposure)" null "exposure of $never"
vk_expect_eq "$(st "$never" .next_job.kind)" full "next job of $never"
st "$never" .rpo_reason | grep -q "never been backed up" || vk_fail "no reason for $never"
vk_expect_eq "$(jq -r .violations "$VK_SCRATCH/st.json")" 1 "violations"
vk_expect_eq "$(st "$dom" .last_backup)" "$last" "last good backup in the full report"

rc=0
vk_vk status >"$VK_SCRATCH/st.txt" 2>"$VK_SCRATCH/st.err" || rc=$?
vk_expect_eq "$rc" 6 "exit status of the table"
vk_expect_grep "$VK_SCRATCH/st.txt" "^$never .*VIOLATED" "table row of $never"
vk_expect_grep "$VK_SCRATCH/st.txt" "^$dom .* ok$" "table row of $dom"
vk_expect_grep "$VK_SCRATCH/st.txt" "$never: RPO VIOLATED: .*never been backed up" "reason line"
grep -q $'\033' "$VK_SCRATCH/st.txt" && vk_fail "colour codes written to a file"

rc=0
vk_vk status nosuch-domain-$$ >/dev/null 2>&1 || rc=$?
vk_expect_eq "$rc" 3 "exit status for an unknown domain"

# ---- jobs ------------------------------------------------------------------
vk_vk jobs --json >"$VK_SCRATCH/jobs.json" 2>"$VK_SCRATCH/jobs.err" ||
    vk_fail "virtkeep jobs failed: $(cat "$VK_SCRATCH/jobs.err")"
vk_expect_grep "$VK_SCRATCH/jobs.err" "virtkeepd is not running" "jobs stderr"
vk_expect_eq "$(jq -r '.daemon, (.active | length)' "$VK_SCRATCH/jobs.json" | tr '\n' ' ')" \
    "false 0 " "jobs offline"
rc=0
vk_vk jobs cancel 1 >/dev/null 2>"$VK_SCRATCH/cancel.err" || rc=$?
vk_expect_eq "$rc" 1 "exit status of cancel without a daemon"
vk_expect_grep "$VK_SCRATCH/cancel.err" "cannot cancel job 1: virtkeepd is not running" "cancel"
rc=0
vk_vk jobs cancel abc >/dev/null 2>&1 || rc=$?
vk_expect_eq "$rc" 2 "exit status of cancel with a bad id"

vk_log "status without a daemon agrees with the catalog"
