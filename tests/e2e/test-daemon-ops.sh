#!/bin/bash
# End-to-end test of virtkeepd's operations (issue 7), real libvirt/QEMU
# domains, file:// targets "main" and "second", the daemon ticking every
# second with its unix socket and an HTTP listener on 127.0.0.1 (token file):
#   - domain A (targets = main, second; drill_every = 30s): after each of
#     the daemon's backups, a copy job puts it on "second": files there,
#     catalog locations on "second", `virtkeep verify BACKUP --from second`
#     passes;
#   - the daemon drills A: a drills row with an actual restore time, and
#     `virtkeep plan restore A --json` then estimates from that drill;
#   - domain B (1 GiB of random data): `virtkeep jobs --json` lists its
#     running backup job; `virtkeep jobs cancel ID` cancels it: the job row
#     ends 'cancelled', the backup row failed, no libvirt job, no partial
#     archive or temp file under the target; the daemon's next backup of B
#     is committed and verifies;
#   - `virtkeep status` (table and --json) is answered by the daemon, with
#     A's next job;
#   - HTTP: /v1/health and /metrics with the token; 401 without it or with a
#     wrong one; the token is in neither the daemon's log nor `ps`;
#   - SIGTERM stops the daemon with exit status 0.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd sqlite3 curl jq python3 ps
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"

A=vk-opa-$$-$RANDOM
B=vk-opb-$$-$RANDOM
T2=$VK_SCRATCH/target2
mkdir -p "$T2"
vk_bk_add_target second "$T2"
sock=$VK_SCRATCH/virtkeepd.sock
log=$VK_SCRATCH/virtkeepd.log
token=tok-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && echo "$token" >"$VK_SCRATCH/token")
vk_free_port
port=$VK_PORT
cat >>"$VK_BK_CONFIG" <<EOF

[daemon]
socket = $sock
listen = 127.0.0.1:$port
token_file = $VK_SCRATCH/token
max_jobs = 4
max_target_jobs = 3

[policy pa]
rpo = 40s
targets = main, second
drill_every = 30s

[policy pb]
rpo = 1h
targets = main

[domain $A]
policy = pa

[domain $B]
policy = pb
EOF

vk_domain_create "$A" 16M 1
vk_domain_start "$A"
vk_domain_write "$A" vda 0x41 0 2M
vk_domain_create "$B" 1152M 1
vk_fill_random "$(vk_domain_image "$B" vda)" 1G
vk_domain_start "$B"

q() { sqlite3 -cmd '.timeout 5000' "$VK_BK_CATALOG" "$1"; }
dump_log() { sed 's/^/  virtkeepd: /' "$log" >&2; }
# until SECS WHAT CMD...: poll every 0.2s until CMD succeeds.
until_ok() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || {
            dump_log
            vk_fail "virtkeepd died while waiting for $what"
        }
        sleep 0.2
    done
    dump_log
    vk_fail "timed out after ${secs}s waiting for $what"
}

"$VKD" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" --tick 1 -v >"$log" 2>&1 &
DPID=$!
vk_on_exit "kill -9 $DPID 2>/dev/null || true"
until_ok 20 "the daemon's socket" test -S "$sock"

# ---- jobs: B's backup is listed running, then cancelled --------------------
b_job() { # the id of B's running backup job, as virtkeep jobs --json lists it
    vk_vk jobs --json >"$VK_SCRATCH/jobs.json" 2>"$VK_SCRATCH/jobs.err" || return 1
    jq -e --arg d "$B" '.daemon == true and ([.active[] | select(.domain == $d and
        .kind == "backup" and .state == "running" and .id > 0)] | length == 1)' \
        "$VK_SCRATCH/jobs.json" >/dev/null
}
until_ok 30 "B's backup in virtkeep jobs" b_job
bjob=$(jq -r --arg d "$B" '.active[] | select(.domain == $d) | .id' "$VK_SCRATCH/jobs.json")
bpid=$(jq -r --arg d "$B" '.active[] | select(.domain == $d) | .pid' "$VK_SCRATCH/jobs.json")
vk_expect_eq "$(q "SELECT kind || ' ' || domain || ' ' || state || ' ' || pid FROM jobs
                   WHERE id = $bjob")" "backup $B running $bpid" "B's job row"
b_writing() { find "$VK_BK_TARGET/$B" -name '.*.vk-tmp-*' -size +16M | grep -q .; }
until_ok 30 "B's archive being written" b_writing
bback=$(q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
           WHERE d.name = '$B' AND b.status = 'running'")
[ -n "$bback" ] || vk_fail "no running backup row of $B"
vk_vk jobs cancel "$bjob" >"$VK_SCRATCH/cancel.out" 2>&1 ||
    vk_fail "jobs cancel $bjob failed: $(cat "$VK_SCRATCH/cancel.out")"
vk_expect_grep "$VK_SCRATCH/cancel.out" "job $bjob: cancel requested" "jobs cancel output"
b_ended() { [ "$(q "SELECT state FROM jobs WHERE id = $bjob")" != running ]; }
until_ok 30 "the end of the cancelled job" b_ended
vk_expect_eq "$(q "SELECT state FROM jobs WHERE id = $bjob")" cancelled "cancelled job's state"
vk_expect_eq "$(q "SELECT status FROM backups WHERE id = '$bback'")" failed \
    "the cancelled backup's row"
kill -0 "$bpid" 2>/dev/null && vk_fail "the cancelled worker (pid $bpid) still runs"
if vk_backup_job_active "$B"; then vk_fail "a libvirt backup job of $B is left"; fi
left=$(find "$VK_BK_TARGET" -name "*$bback*" -o -name '.*.vk-tmp-*')
[ -z "$left" ] || vk_fail "the cancelled backup left objects: $left"
vk_expect_eq "$(q "SELECT count(*) FROM archive_locations WHERE backup_id = '$bback'")" 0 \
    "locations of the cancelled backup"
vk_log "job $bjob (backup $bback of $B) cancelled cleanly"

# ---- status and HTTP while the daemon runs ----------------------------------
a_next() {
    vk_vk status --json >"$VK_SCRATCH/st.json" 2>"$VK_SCRATCH/st.err"
    jq -e --arg d "$A" '.daemon == true and
        (.domains[] | select(.domain == $d) | .next_job.kind == "inc")' "$VK_SCRATCH/st.json"
}
until_ok 60 "the daemon's status with A's next incremental" a_next
grep -q "not running" "$VK_SCRATCH/st.err" && vk_fail "status fell back to the catalog"
jq -e --arg d "$A" '.domains[] | select(.domain == $d) | .next_job.due > 0' \
    "$VK_SCRATCH/st.json" >/dev/null || vk_fail "status has no due time of A's next job"
rc=0
vk_vk status >"$VK_SCRATCH/st.txt" 2>"$VK_SCRATCH/st.err" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 6 ] || vk_fail "status (table) exit status $rc"
grep -q "not running" "$VK_SCRATCH/st.err" && vk_fail "the status table fell back to the catalog"
vk_expect_grep "$VK_SCRATCH/st.txt" "^$A +pa .* inc (now|in [0-9])" "A's row with its next job"

url=http://127.0.0.1:$port
code() { curl -s -o "$VK_SCRATCH/http.out" -w '%{http_code}' "$@"; }
vk_expect_eq "$(code -H "Authorization: Bearer $token" "$url/v1/health")" 200 "health with token"
jq -e ".ok == true and .pid == $DPID" "$VK_SCRATCH/http.out" >/dev/null ||
    vk_fail "health answer: $(cat "$VK_SCRATCH/http.out")"
vk_expect_eq "$(code -H "Authorization: Bearer $token" "$url/metrics")" 200 "metrics with token"
vk_expect_grep "$VK_SCRATCH/http.out" "^virtkeep_rpo_exposure_seconds\{domain=\"$A\"\} " \
    "A's exposure in /metrics over HTTP"
vk_expect_eq "$(code "$url/v1/health")" 401 "health without a token"
vk_expect_eq "$(code "$url/metrics")" 401 "metrics without a token"
vk_expect_eq "$(code -H "Authorization: Bearer ${token}x" "$url/v1/health")" 401 \
    "health with a wrong token"
vk_expect_eq "$(code -H "Authorization: Bearer nope" "$url/metrics")" 401 "metrics, wrong token"

# ---- copies to the second target, and a drill -------------------------------
committed() { # DOMAIN: committed backup ids, oldest first
    q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
       WHERE d.name = '$1' AND b.status = 'committed' ORDER BY b.started, b.id"
}
copied() { # ID: the backup's manifest and archive are on "second"
    [ -f "$T2/$A/$1/manifest.json" ] && [ -f "$T2/$A/$1/vda.tar" ] &&
        [ "$(q "SELECT count(*) FROM archive_locations WHERE backup_id = '$1'
                AND target = 'second'")" = 2 ]
}
wn=0
a_progress() { # two backups of A, every one copied, and an ok drill
    local ids id
    ids=$(committed "$A")
    [ "$(wc -w <<<"$ids")" -ge 2 ] || {
        wn=$((wn + 1))
        ((wn % 25 == 0)) && vk_domain_write "$A" vda 0x$((wn % 80 + 10)) "$((wn % 12))M" 256k
        return 1
    }
    for id in $ids; do copied "$id" || return 1; done
    [ -n "$(q "SELECT id FROM drills WHERE domain = '$A' AND state = 'ok'")" ]
}
until_ok 120 "two backups of A copied to 'second' and a drill" a_progress
for id in $(committed "$A"); do
    vk_vk verify "$id" --from second --json >"$VK_SCRATCH/verify.json" 2>&1 ||
        vk_fail "verify $id --from second failed: $(cat "$VK_SCRATCH/verify.json")"
    jq -e '.failed == 0 and ([.items[] | select(.ok and .target == "second") | .disk] |
        sort == [null, "vda"]) and ([.items[] | select(.target != "second")] == [])' \
        "$VK_SCRATCH/verify.json" >/dev/null ||
        vk_fail "verify $id --from second: $(cat "$VK_SCRATCH/verify.json")"
    vk_expect_eq "$(q "SELECT count(*) FROM jobs WHERE kind = 'copy' AND backup_id = '$id'
                       AND target = 'second' AND state = 'succeeded'")" 1 "copy jobs of $id"
done
drill=$(q "SELECT id FROM drills WHERE domain = '$A' AND state = 'ok' ORDER BY id LIMIT 1")
row=$(q "SELECT actual_seconds > 0, bytes_read > 0, estimate_seconds > 0 FROM drills
         WHERE id = $drill")
vk_expect_eq "$row" "1|1|1" "the daemon's drill row (actual time, bytes, estimate)"
vk_expect_eq "$(q "SELECT j.state FROM jobs j JOIN drills r ON r.job_id = j.id
                   WHERE r.id = $drill")" succeeded "the drill's job"
vk_vk plan restore "$A" --json >"$VK_SCRATCH/plan.json" || vk_fail "plan restore $A failed"
vk_expect_eq "$(jq -r .estimate_source "$VK_SCRATCH/plan.json")" drill "plan estimate source"
ndrills=$(q "SELECT count(*) FROM drills WHERE domain = '$A' AND state = 'ok'")
vk_expect_eq "$(jq -r .drill.samples "$VK_SCRATCH/plan.json")" "$ndrills" "drills learned from"
vk_log "$A: $(committed "$A" | wc -l) backups copied and verified on 'second'; drill $drill"

# ---- B's next backup, by the daemon after the cancel --------------------------
b_next() { [ -n "$(committed "$B")" ]; }
until_ok 150 "the daemon's next backup of $B" b_next
bnext=$(committed "$B" | head -1)
vk_expect_eq "$(q "SELECT level FROM backups WHERE id = '$bnext'")" full "level of $B's backup"
vk_vk verify "$bnext" >"$VK_SCRATCH/verify-b.out" 2>&1 ||
    vk_fail "verify $bnext failed: $(cat "$VK_SCRATCH/verify-b.out")"
vk_expect_eq "$(vk_files "$VK_BK_TARGET/$B")" \
    "$(printf '%s\n' "$bnext/manifest.json" "$bnext/vda.tar" | sort)" "B's files on the target"

# ---- the token stays secret; stop ------------------------------------------------
ps -eo args >"$VK_SCRATCH/ps.txt"
grep -qF "$token" "$VK_SCRATCH/ps.txt" && vk_fail "the token appears in ps output"
kill -TERM "$DPID"
rc=0
wait "$DPID" || rc=$?
vk_expect_eq "$rc" 0 "exit status of virtkeepd on SIGTERM"
grep -qF "$token" "$log" && vk_fail "the token appears in the daemon's log"
vk_expect_grep "$log" "job $bjob: cancel requested" "the daemon logs the cancel"
vk_log "PASS: copies, drill, cancel, status and HTTP checked"
