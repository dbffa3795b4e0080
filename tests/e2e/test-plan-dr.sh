#!/bin/bash
# End-to-end test of `virtkeep plan dr` (src/dr.c): three small domains with
# different priorities and RTOs, backed up to a file:// target, and a
# fourth configured but never backed up.  Each backed-up domain's restore
# estimate is taught by one drill row (bytes read = what its plan reads,
# seconds chosen), so that the estimates are exactly 40 s, 50 s and 30 s:
#
#   domain  priority  RTO   estimate
#   A       1         60s   40   parallel 1: 0-40 met    parallel 2: slot 0, 0-40
#   B       2         100s  50               40-90 met               slot 1, 0-50
#   C       3         75s   30               90-120 MISSED (queue)   slot 0, 40-70 met
#   D       (RPO 1h, never backed up): RPO and RTO missed
#
# parallel 1: makespan 120 s; parallel 2: 70 s.  Exit status 6 (an
# objective missed) both times, and the text output names the reasons.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq sqlite3 python3

tag=$$-$RANDOM
A=vk-dra-$tag B=vk-drb-$tag C=vk-drc-$tag D=vk-drd-$tag
cat >>"$VK_BK_CONFIG" <<EOF

[policy p1]
rpo = 1h
rto = 60s
priority = 1
targets = main

[policy p2]
rpo = 1h
rto = 100s
priority = 2
targets = main

[policy p3]
rpo = 1h
rto = 75s
priority = 3
targets = main

[domain $A]
policy = p1

[domain $B]
policy = p2

[domain $C]
policy = p3

[domain $D]
policy = p1
EOF

sql() {
    sqlite3 "$VK_BK_CATALOG" "$1"
}

# teach DOMAIN SECONDS: one ok drill that read exactly what the restore of
# DOMAIN reads, in SECONDS.
teach() {
    local bytes
    bytes=$(vk_vk plan restore "$1" --json | jq -r .read_bytes)
    [ "$bytes" -gt 0 ] || vk_fail "plan restore $1 reads no bytes"
    sql "INSERT INTO drills(domain, backup_id, targets, state, started, finished, actual_seconds,
         bytes_read) VALUES('$1', 'x', 'main', 'ok', strftime('%s','now'), strftime('%s','now'),
         $2, $bytes)"
}

for d in "$A" "$B" "$C"; do
    vk_domain_create "$d" 8M 1
    vk_domain_start "$d"
    vk_domain_write "$d" vda 0x33 0 1M
    vk_backup 0 "$d" --level full
done
teach "$A" 40
teach "$B" 50
teach "$C" 30

# dr OUT WANT_RC ARGS...
dr() {
    local out=$VK_SCRATCH/$1 want=$2 rc=0
    shift 2
    vk_vk plan dr "$@" >"$out" 2>"$out.err" || rc=$?
    if [ "$rc" != "$want" ]; then
        sed 's/^/  stdout: /' "$out" >&2
        sed 's/^/  stderr: /' "$out.err" >&2
        vk_fail "plan dr $*: exit status $rc, expected $want"
    fi
}
# field FILE DOMAIN FILTER
field() {
    jq -r --arg d "$2" ".domains[] | select(.domain == \$d) | $3" "$VK_SCRATCH/$1"
}
near() { # GOT WANT WHAT
    python3 -c 'import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 1e-6)' "$1" "$2" ||
        vk_fail "$3: expected $2, got $1"
}

# ---- one slot ----------------------------------------------------------------------
dr p1.json 6 --parallel 1 --json
vk_expect_eq "$(jq -r .parallel "$VK_SCRATCH/p1.json")" 1 "parallel"
near "$(jq -r .makespan_seconds "$VK_SCRATCH/p1.json")" 120 "makespan at parallel 1"
vk_expect_eq "$(jq -r '[.domains[].domain] | join(" ")' "$VK_SCRATCH/p1.json")" "$A $D $B $C" \
    "restore order (priority; the unrestorable D after A)"
near "$(field p1.json "$A" .finish_seconds)" 40 "A finishes"
near "$(field p1.json "$B" .start_seconds)" 40 "B starts"
near "$(field p1.json "$B" .finish_seconds)" 90 "B finishes"
near "$(field p1.json "$C" .start_seconds)" 90 "C starts"
near "$(field p1.json "$C" .finish_seconds)" 120 "C finishes"
vk_expect_eq "$(field p1.json "$A" .estimate_source)" drill "A's estimate source"
vk_expect_eq "$(field p1.json "$A" .rto_met)$(field p1.json "$B" .rto_met)" truetrue "A, B RTO"
vk_expect_eq "$(field p1.json "$C" .rto_met)" false "C misses its RTO at parallel 1"
field p1.json "$C" '.reasons[]' | grep -q "queue" || vk_fail "C's reason does not name the queue"
vk_expect_eq "$(field p1.json "$C" .rpo_met)" true "C's RPO"
vk_expect_eq "$(field p1.json "$D" .rpo_met)" false "D (never backed up) RPO"
vk_expect_eq "$(field p1.json "$D" .restorable)" false "D restorable"
field p1.json "$D" '.reasons[]' | grep -q "never backed up" || vk_fail "D's reason"
vk_expect_eq "$(jq -r .missed "$VK_SCRATCH/p1.json")" 2 "domains missing an objective"

# ---- two slots -----------------------------------------------------------------------
dr p2.json 6 --parallel 2 --json
near "$(jq -r .makespan_seconds "$VK_SCRATCH/p2.json")" 70 "makespan at parallel 2"
vk_expect_eq "$(field p2.json "$B" .slot)" 1 "B's slot"
near "$(field p2.json "$C" .start_seconds)" 40 "C starts on A's slot"
near "$(field p2.json "$C" .finish_seconds)" 70 "C finishes"
vk_expect_eq "$(field p2.json "$C" .rto_met)" true "C meets its RTO at parallel 2"
vk_expect_eq "$(field p2.json "$C" '.reasons | length')" 0 "C has no reason at parallel 2"
vk_expect_eq "$(jq -r .missed "$VK_SCRATCH/p2.json")" 1 "only D misses at parallel 2"

# ---- text, and a target that does not exist -----------------------------------------
dr p1.txt 6 --parallel 1
vk_expect_grep "$VK_SCRATCH/p1.txt" "total 2m" "the text names the total duration"
vk_expect_grep "$VK_SCRATCH/p1.txt" "$C: .*queue" "the text names C's reason"
vk_expect_grep "$VK_SCRATCH/p1.txt" "$D: .*never backed up" "the text names D's reason"
dr p3.json 6 --target "file://$VK_SCRATCH/nowhere" --json
vk_expect_eq "$(field p3.json "$A" .restorable)" false "A restorable from a missing target"
field p3.json "$A" '.reasons[]' | grep -q "cannot be restored" || vk_fail "A's reason (target)"
dr p4.json 2 --parallel 0
vk_log "PASS"
