#!/bin/bash
# End-to-end test of virtkeepd (issue 7) with real libvirt/QEMU domains and a
# file:// target, the daemon ticking every second:
#   - domain A (rpo = 20s, max_chain = 3, keep-last = 2): the guest is written
#     to between backups; the gap between consecutive backup start times
#     never exceeds the RPO, and at least two incrementals run;
#   - after each backup the daemon prunes A: the target then holds exactly
#     the archives of the backups keep-last = 2 keeps (with the ones they
#     depend on), computed here from every backup the catalog ever showed;
#   - domain B: once it has a chain, the read rate of the target is seeded
#     and the configuration reloaded (SIGHUP) with an RTO between the
#     restore estimate of the full alone and that of the chain with one more
#     incremental: the next backup of B is a full, chosen for the RTO;
#   - the target is made unreachable (renamed): backups fail (without a
#     stampede), and once the RPO passes `virtkeep status --json` shows the
#     violation; /metrics (curl on the unix socket) agrees with the catalog:
#     last success time, bytes of the last backup, RPO exposure within a tick;
#   - SIGTERM stops the daemon with exit status 0.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd sqlite3 curl jq python3
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"
curl --help all 2>/dev/null | grep -q -- --unix-socket || vk_skip "curl has no --unix-socket"

A=vk-da-$$-$RANDOM
B=vk-db-$$-$RANDOM
RPO=20
sock=$VK_SCRATCH/virtkeepd.sock
log=$VK_SCRATCH/virtkeepd.log
cat >>"$VK_BK_CONFIG" <<EOF

[daemon]
socket = $sock
max_jobs = 2
max_target_jobs = 2

[policy pa]
rpo = ${RPO}s
max_chain = 3
keep-last = 2
targets = main

[policy pb]
rpo = ${RPO}s
targets = main

[domain $A]
policy = pa

[domain $B]
policy = pb
EOF
for d in "$A" "$B"; do
    vk_domain_create "$d" 64M 1
    vk_domain_start "$d"
done
vk_domain_write "$B" vda 0x33 0 4M # the full of B holds data

q() { sqlite3 -cmd '.timeout 5000' "$VK_BK_CATALOG" "$1"; }
seen=$VK_SCRATCH/seen.txt
: >"$seen"
# Every committed backup the catalog shows, ever: id|domain|level|parent|started.
record() {
    [ -f "$VK_BK_CATALOG" ] || return 0
    q "SELECT b.id, d.name, b.level, ifnull(b.parent, ''), b.started FROM backups b
       JOIN domains d ON d.id = b.domain_id WHERE b.status = 'committed'" >>"$seen" || true
    sort -u -o "$seen" "$seen"
}
n_seen() { # DOMAIN [LEVEL]
    awk -F'|' -v d="$1" -v l="${2:-}" '$2 == d && (l == "" || $3 == l)' "$seen" | wc -l
}
wn=0
guest_write() { # new data on both guests, at a new offset each time
    wn=$((wn + 1))
    vk_domain_write "$A" vda "0x$(printf %02x $((wn % 200 + 16)))" "$((wn % 60))M" 512k
    vk_domain_write "$B" vda "0x$(printf %02x $((wn % 200 + 16)))" "$((wn % 60))M" 512k
}
# run_until SECS WHAT CMD...: poll (recording, writing to the guests every
# 4s) until CMD succeeds.
run_until() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        record
        "$@" && return 0
        kill -0 "$DPID" 2>/dev/null || {
            cat "$log" >&2
            vk_fail "virtkeepd died while waiting for $what"
        }
        ((i % 8 == 0)) && guest_write
        sleep 0.5
    done
    sed 's/^/  virtkeepd: /' "$log" >&2
    vk_fail "timed out after ${secs}s waiting for $what"
}

"$VKD" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" --tick 1 >"$log" 2>&1 &
DPID=$!
vk_on_exit "kill -9 $DPID 2>/dev/null || true"
vk_wait_for 20 test -S "$sock" || {
    cat "$log" >&2
    vk_fail "virtkeepd did not create its socket"
}

# ---- B: a chain, then an RTO that only a new full meets ------------------
b_chain() { [ "$(n_seen "$B" full)" -ge 1 ] && [ "$(n_seen "$B" inc)" -ge 1 ]; }
run_until 90 "a full and an incremental of $B" b_chain
full_b=$(q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
            WHERE d.name = '$B' AND b.level = 'full' AND b.status = 'committed'")
read -r F S K < <(q "SELECT (SELECT bytes_stored FROM backups WHERE id = '$full_b'),
    sum(b.bytes_stored), count(*) - 1 FROM backups b JOIN domains d ON d.id = b.domain_id
    WHERE d.name = '$B' AND b.status = 'committed'" | tr '|' ' ')
RTO=100
# est(full) = F/r <= RTO < (S + (S-F)/K)/r = est(chain + one more inc)
rate=$(python3 -c "F,S,K=$F,$S,$K; print(round((F + (S + (S - F) / K)) / 2 / $RTO * 1000))")
[ "$S" -gt "$F" ] && [ "$rate" -gt 0 ] || vk_fail "unexpected sizes of $B: full $F, chain $S"
python3 -c "F,S,K,r=$F,$S,$K,$rate/1000; exit(not (F / r <= $RTO < (S + (S - F) / K) / r))" ||
    vk_fail "the RTO does not sit between the estimates (full $F, chain $S, rate $rate/1000)"
q "INSERT INTO throughput(target, direction, bytes, seconds, measured)
   VALUES ('main', 'read', $rate, 1000, strftime('%s', 'now'))"
last_b=$(q "SELECT max(b.id) FROM backups b JOIN domains d ON d.id = b.domain_id
            WHERE d.name = '$B'")
sed -i "s/^\[policy pb\]$/[policy pb]\nrto = ${RTO}s/" "$VK_BK_CONFIG"
kill -HUP "$DPID"
vk_log "$B: full $F bytes, chain $S bytes ($K inc), read rate $((rate / 1000)) B/s, rto ${RTO}s"
b_next() {
    q "SELECT b.id || '|' || b.level FROM backups b JOIN domains d ON d.id = b.domain_id
       WHERE d.name = '$B' AND b.status = 'committed' AND b.id > '$last_b' ORDER BY b.id" |
        head -1 | grep .
}
run_until 60 "the next backup of $B" b_next >/dev/null
vk_expect_eq "$(b_next | cut -d'|' -f2)" full "level of $B's backup under the tight RTO"
vk_expect_grep "$log" "backup of domain '$B' level full .*more than the RTO" \
    "the daemon's reason for the full of $B"
vk_expect_grep "$log" "configuration reloaded" "the SIGHUP reload"

# ---- A: on time, incrementals, prune --------------------------------------
# F1 I1 I2 F2 J1: then keep-last = 2 keeps F2 and J1 only.
a_newest_level() { awk -F'|' -v d="$A" '$2 == d' "$seen" | sort -t'|' -k5,5n | tail -1 | cut -d'|' -f3; }
a_done() { [ "$(n_seen "$A" full)" -ge 2 ] && [ "$(a_newest_level)" = inc ]; }
run_until 120 "a second chain of $A with an incremental" a_done
# Wait for the prune after A's latest backup, and for no backup of A to run.
pruned() {
    local last
    last=$(q "SELECT max(b.finished) FROM backups b JOIN domains d ON d.id = b.domain_id
              WHERE d.name = '$A' AND b.status = 'committed'")
    [ -z "$(q "SELECT 1 FROM backups b JOIN domains d ON d.id = b.domain_id
               WHERE d.name = '$A' AND b.status = 'running'")" ] &&
        [ -n "$(q "SELECT 1 FROM jobs WHERE kind = 'prune' AND domain = '$A'
                   AND state = 'succeeded' AND started >= $last")" ]
}
run_until 30 "the prune of $A" pruned
record
python3 - "$seen" "$A" >"$VK_SCRATCH/kept.txt" <<'EOF'
import sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
rows = sorted((r for r in rows if r[1] == sys.argv[2]), key=lambda r: (int(r[4]), r[0]))
parent = {r[0]: r[3] for r in rows}
keep = set()
for r in rows[-2:]:  # keep-last = 2, and what they depend on
    i = r[0]
    while i:
        keep.add(i)
        i = parent.get(i, "")
for i in sorted(keep):
    print(i)
EOF
newest=$(tail -1 "$VK_SCRATCH/kept.txt")
want=$(while read -r id; do printf '%s\n' "$id/manifest.json" "$id/vda.tar"; done \
    <"$VK_SCRATCH/kept.txt" | sort)
got=$(vk_files "$VK_BK_TARGET/$A" | grep -v '/\.' | awk -F/ -v n="$newest" '$1 <= n' | sort)
vk_expect_eq "$got" "$want" "archives of $A on the target after pruning"
[ "$(wc -l <"$VK_SCRATCH/kept.txt")" -lt "$(n_seen "$A")" ] || vk_fail "the prune removed nothing"

# The RPO held: consecutive backups of A started at most RPO apart.
starts=$(awk -F'|' -v d="$A" '$2 == d {print $5}' "$seen" | sort -n)
prev=
for s in $starts; do
    [ -z "$prev" ] || [ $((s - prev)) -le $RPO ] ||
        vk_fail "backups of $A started $((s - prev))s apart, more than the RPO (${RPO}s)"
    prev=$s
done
vk_log "$A: $(n_seen "$A") backups ($(n_seen "$A" inc) inc), gaps <= ${RPO}s; kept $(wc -l <"$VK_SCRATCH/kept.txt")"

# ---- the target made unreachable: failures, violation, metrics -----------
mv "$VK_BK_TARGET" "$VK_BK_TARGET.away"
vk_on_exit "mv '$VK_BK_TARGET.away' '$VK_BK_TARGET' 2>/dev/null || true"
status_violated() {
    vk_vk status --json >"$VK_SCRATCH/status.json" 2>"$VK_SCRATCH/status.err" || true
    jq -e --arg d "$A" '.domains[] | select(.domain == $d) | .rpo_violated == true' \
        "$VK_SCRATCH/status.json" >/dev/null
}
run_until 60 "the RPO violation of $A in virtkeep status" status_violated
jq -e '.daemon == true and .violations >= 1' "$VK_SCRATCH/status.json" >/dev/null ||
    vk_fail "status does not report the violation: $(cat "$VK_SCRATCH/status.json")"
fails=$(q "SELECT count(*) FROM jobs WHERE kind = 'backup' AND domain = '$A' AND state = 'failed'")
# (The attempt due, one retry by the last start that keeps the RPO, then
# retries RPO/4 = 5s apart until the violation shows.)
[ "$fails" -ge 1 ] && [ "$fails" -le 4 ] ||
    vk_fail "$fails failed backup jobs of $A with the target away: expected 1 to 4 (backoff)"

curl -sf --unix-socket "$sock" http://localhost/metrics >"$VK_SCRATCH/metrics.txt" ||
    vk_fail "GET /metrics failed"
now=$(date +%s)
metric() { # NAME LABELS
    awk -v k="$1{$2}" 'index($0, k " ") == 1 {print $2}' "$VK_SCRATCH/metrics.txt"
}
last=$(q "SELECT b.started || ' ' || b.bytes_stored || ' ' || b.level FROM backups b
          JOIN domains d ON d.id = b.domain_id WHERE d.name = '$A' AND b.status = 'committed'
          ORDER BY b.started DESC, b.id DESC LIMIT 1")
read -r l_start l_bytes l_level <<<"$last"
m_last=$(metric virtkeep_last_success_timestamp_seconds "domain=\"$A\"")
m_bytes=$(metric virtkeep_last_job_bytes "domain=\"$A\",kind=\"backup\",level=\"$l_level\"")
m_exp=$(metric virtkeep_rpo_exposure_seconds "domain=\"$A\"")
python3 - "$m_last" "$l_start" "$m_bytes" "$l_bytes" "$m_exp" "$now" <<'EOF' || {
import sys
m_last, l_start, m_bytes, l_bytes, m_exp, now = sys.argv[1:]
ok = float(m_last) == float(l_start) and float(m_bytes) == float(l_bytes)
ok = ok and abs(float(m_exp) - (int(now) - int(l_start))) <= 2
sys.exit(0 if ok else 1)
EOF
    grep "$A" "$VK_SCRATCH/metrics.txt" >&2
    vk_fail "metrics disagree with the catalog: last $m_last/$l_start bytes $m_bytes/$l_bytes exposure $m_exp at $now"
}

# ---- stop --------------------------------------------------------------------
kill -TERM "$DPID"
rc=0
wait "$DPID" || rc=$?
vk_expect_eq "$rc" 0 "exit status of virtkeepd on SIGTERM"
vk_log "PASS: $A rpo held, pruned; $B full for the RTO; violation and metrics checked"
