#!/bin/bash
# End-to-end test of `virtkeep prune` against real backups of a running
# domain on a file:// target.  Six backups: F1 <- I1 <- I2, F2 <- J1 <- J2;
# keep-last = 2 keeps J2 and J1, and F2 because J1 needs it.
#   - prune --dry-run lists exactly that, with reasons, and changes nothing;
#   - a prune killed (kill -9) after its first deleted object has marked all
#     three doomed backups in the catalog and deleted the manifest of the
#     newest one first; the next prune finishes the job;
#   - the target then holds exactly the objects of F2, J1, J2, and the
#     catalog exactly their rows and locations;
#   - a prune that fails midway (target gone) keeps its marks, and the next
#     one, with the target back, finishes;
#   - a domain without a retention policy is refused (exit 2).
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq sqlite3

dom=vk-prune-$$-$RANDOM
printf '\n[policy two]\nkeep-last = 2\ntargets = main\n\n[domain %s]\npolicy = two\n' "$dom" \
    >>"$VK_BK_CONFIG"
vk_domain_create "$dom" 16M 1
vk_domain_start "$dom"

ids=()
take() { # LEVEL PATTERN
    vk_domain_write "$dom" vda "$2" $((${#ids[@]} * M)) 1M
    vk_backup 0 "$dom" --level "$1"
    vk_bk_check_committed "$dom" "$1"
    ids+=("$(vk_bk .backup)")
    sleep 1 # ids are per second
}
take full 0x11
take inc 0x12
take inc 0x13
take full 0x21
take inc 0x22
take inc 0x23
F1=${ids[0]} I1=${ids[1]} I2=${ids[2]} F2=${ids[3]} J1=${ids[4]} J2=${ids[5]}

# prune_run OUT [ARGS...]: virtkeep prune ARGS --json into $VK_SCRATCH/OUT;
# sets RC.
prune_run() {
    local out=$VK_SCRATCH/$1
    shift
    RC=0
    vk_vk prune "$@" --json >"$out" 2>"$out.err" || RC=$?
    jq -e . "$out" >/dev/null || {
        cat "$out.err" >&2
        vk_fail "prune $* printed no valid JSON"
    }
}
field() { # FILE ID FIELD
    jq -r --arg id "$2" ".backups[] | select(.backup == \$id) | .$3" "$VK_SCRATCH/$1"
}
catalog_ids() {
    vk_list "$dom"
    vk_list_ids | tr '\n' ' ' | sed 's/ $//'
}
sorted() {
    printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//'
}
# The objects backups should have on the target, sorted.
objects_of() {
    local id
    for id in "$@"; do
        printf '%s\n' "$dom/$id/manifest.json" "$dom/$id/vda.tar"
    done | sort
}
intents() {
    sqlite3 "$VK_BK_CATALOG" "SELECT backup_id FROM prune_intents ORDER BY backup_id" |
        tr '\n' ' ' | sed 's/ $//'
}

# ---- dry run ---------------------------------------------------------------
before=$(vk_files "$VK_BK_TARGET")
vk_expect_eq "$before" "$(objects_of "${ids[@]}")" "objects before pruning"
prune_run dry.json --dry-run
vk_expect_eq "$RC" 0 "exit status of prune --dry-run"
vk_expect_eq "$(jq -r .dry_run "$VK_SCRATCH/dry.json")" true "dry_run"
for id in "$F1" "$I1" "$I2"; do
    vk_expect_eq "$(field dry.json "$id" action)" delete "dry-run action for $id"
    vk_expect_eq "$(field dry.json "$id" reason)" "no rule keeps it" "dry-run reason for $id"
done
vk_expect_eq "$(field dry.json "$J2" action)" keep "dry-run action for $J2"
vk_expect_eq "$(field dry.json "$J2" reason)" "last 1/2" "reason for $J2"
vk_expect_eq "$(field dry.json "$J1" reason)" "last 2/2" "reason for $J1"
vk_expect_eq "$(field dry.json "$F2" reason)" "needed by $J1" "reason for $F2"
vk_expect_eq "$(jq -r '"\(.deleted) \(.kept)"' "$VK_SCRATCH/dry.json")" "3 3" "dry-run counts"
vk_expect_eq "$(vk_files "$VK_BK_TARGET")" "$before" "target after a dry run"
vk_expect_eq "$(catalog_ids)" "$(sorted "${ids[@]}")" "catalog after a dry run"
vk_expect_eq "$(intents)" "" "prune intents after a dry run"
# The text form says the same.
vk_vk prune --dry-run >"$VK_SCRATCH/dry.txt" || vk_fail "prune --dry-run (text) failed"
vk_expect_grep "$VK_SCRATCH/dry.txt" "^would delete +$I1 \(no rule keeps it\)$" "text dry run"
vk_expect_grep "$VK_SCRATCH/dry.txt" "^keep +$F2 \(needed by $J1\)$" "text dry run"

# ---- killed midway -----------------------------------------------------------
VIRTKEEP_TEST_PRUNE_PAUSE=1 "$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" \
    prune "$dom" >"$VK_SCRATCH/killed.out" 2>"$VK_SCRATCH/killed.err" &
pid=$!
vk_on_exit "kill -9 $pid 2>/dev/null || true"
for ((i = 0; i < 300; i++)); do
    grep -q "prune paused" "$VK_SCRATCH/killed.err" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
grep -q "prune paused after 1 objects" "$VK_SCRATCH/killed.err" || {
    cat "$VK_SCRATCH/killed.err" >&2
    vk_fail "the prune did not reach the test pause"
}
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
# Marked first, all three; then the newest one's manifest went first.
vk_expect_eq "$(intents)" "$(sorted "$F1" "$I1" "$I2")" "prune intents after kill -9"
[ ! -e "$VK_BK_TARGET/$dom/$I2/manifest.json" ] ||
    vk_fail "the manifest of $I2 was not the first object deleted"
[ -f "$VK_BK_TARGET/$dom/$I2/vda.tar" ] || vk_fail "more than one object was deleted"
vk_expect_eq "$(catalog_ids)" "$(sorted "${ids[@]}")" "catalog rows after kill -9"

# ---- the next prune finishes -------------------------------------------------
prune_run resume.json
vk_expect_eq "$RC" 0 "exit status of the prune after kill -9"
for id in "$F1" "$I1" "$I2"; do
    vk_expect_eq "$(field resume.json "$id" action)" deleted "action for $id"
    vk_expect_eq "$(field resume.json "$id" resumed)" true "resumed flag of $id"
done
vk_expect_eq "$(jq -r .objects_deleted "$VK_SCRATCH/resume.json")" 5 \
    "objects deleted (one was already gone)"
vk_expect_eq "$(vk_files "$VK_BK_TARGET")" "$(objects_of "$F2" "$J1" "$J2")" "objects on the target"
vk_expect_eq "$(catalog_ids)" "$(sorted "$F2" "$J1" "$J2")" "backups in the catalog"
vk_expect_eq "$(intents)" "" "prune intents after the prune"
vk_expect_eq "$(sqlite3 "$VK_BK_CATALOG" "SELECT count(*) FROM archive_locations")" 6 \
    "archive locations left"
# Idempotent: nothing more to do.
prune_run again.json
vk_expect_eq "$(jq -r .deleted "$VK_SCRATCH/again.json")" 0 "a second prune deletes nothing"
# The kept chain is intact.
vk_vk verify "$J2" >/dev/null 2>"$VK_SCRATCH/verify.err" || {
    cat "$VK_SCRATCH/verify.err" >&2
    vk_fail "verify of $J2 after pruning failed"
}

# ---- a prune that fails midway keeps its marks ---------------------------------
take full 0x31
F3=${ids[6]}
sed -i 's/^keep-last = 2$/keep-last = 1/' "$VK_BK_CONFIG"
mv "$VK_BK_TARGET" "$VK_BK_TARGET.away"
prune_run fail.json "$dom"
vk_expect_eq "$RC" 3 "exit status of a prune whose target directory is gone"
jq -r .error "$VK_SCRATCH/fail.json" | grep -qF "$J2" ||
    vk_fail "the error does not name the backup: $(jq -r .error "$VK_SCRATCH/fail.json")"
vk_expect_eq "$(intents)" "$(sorted "$F2" "$J1" "$J2")" "marks after a failed prune"
mv "$VK_BK_TARGET.away" "$VK_BK_TARGET"
prune_run fixed.json "$dom"
vk_expect_eq "$RC" 0 "exit status of the prune with the target back"
vk_expect_eq "$(jq -r .deleted "$VK_SCRATCH/fixed.json")" 3 "backups deleted"
vk_expect_eq "$(vk_files "$VK_BK_TARGET")" "$(objects_of "$F3")" "objects after the last prune"
vk_expect_eq "$(catalog_ids)" "$F3" "catalog after the last prune"
vk_expect_eq "$(intents)" "" "no marks left"

# ---- refusals -------------------------------------------------------------------
RC=0
vk_vk prune no-such-domain >/dev/null 2>"$VK_SCRATCH/nopol.err" || RC=$?
vk_expect_eq "$RC" 2 "exit status of prune for a domain without a policy"
vk_expect_grep "$VK_SCRATCH/nopol.err" "has no retention policy" "message without a policy"
vk_log "PASS"
