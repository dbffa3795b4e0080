#!/bin/bash
# End-to-end: two hosts, one PostgreSQL catalog.  Two session libvirtds
# (tests/lib/migrate-lib.sh) play hosts "alpha" (src) and "beta" (dst); each
# has its own virtkeepd (run as the migration user, VIRTKEEP_HOST naming
# its host) on one PostgreSQL 15 catalog (tests/lib/pg.sh) and one target.
# One domain with a policy runs on alpha, on shared storage:
#   - both hosts register and heartbeat (virtkeep hosts --json: two hosts,
#     up); only alpha backs the domain up, beta plans nothing for it;
#   - a live migration alpha -> beta mid-schedule is recorded in the
#     catalog's moves; beta's daemon then continues the chain with an
#     incremental, and the domain's host becomes beta;
#   - kill -9 of beta's daemon and its workers during a backup job: once
#     beta's lease expired (not before), alpha's daemon marks the job
#     failed, naming beta; no backup of beta is left running; status names
#     beta as unreachable;
#   - beta's daemon started again recovers and resumes (a committed backup);
#   - no two backup jobs of the domain ever overlapped in time;
#   - the latest point restores byte-identical to the disk.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"
. "$abs_top_srcdir/tests/lib/pg.sh"

VKD=$abs_top_builddir/src/virtkeepd
vk_mig_setup
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"
vk_pg_e2e_catalog "$VK_MIG_USER"
fleet=$VK_SCRATCH/fleet
mkdir -p "$fleet/target"
dom=vkf$$
dom2=vkfa$$ # stays on alpha the whole run: its RPO is checked at the end
printf '[catalog]\nurl = %s\n\n[target main]\nurl = file://%s\n\n' "$VK_PG_CATALOG" \
    "$fleet/target" >"$fleet/virtkeep.conf"
printf '[policy fleet]\nrpo = 30s\ntargets = main\n\n[domain %s]\npolicy = fleet\n' "$dom" \
    >>"$fleet/virtkeep.conf"
printf '\n[domain %s]\npolicy = fleet\n' "$dom2" >>"$fleet/virtkeep.conf"
chown -R "$VK_MIG_USER:" "$fleet"

vk_mig_domain src "$dom" 64 64M
vk_mig_virsh src start "$dom" >/dev/null
vk_mig_write src "$dom" 0x11 0 4M
vk_mig_domain src "$dom2" 64 64M
vk_mig_virsh src start "$dom2" >/dev/null

# daemon HOST NAME: start virtkeepd for session daemon HOST as host NAME.
declare -A DPID
daemon() {
    local host=$1 name=$2 base=$VK_SCRATCH/host-$1
    setsid runuser -u "$VK_MIG_USER" -- env HOME="$base/home" XDG_RUNTIME_DIR="$base/run" \
        XDG_CONFIG_HOME="$base/config" XDG_CACHE_HOME="$base/cache" VIRTKEEP_HOST="$name" \
        "$VKD" --config "$fleet/virtkeep.conf" -c "$(vk_mig_uri "$host")" --tick 2 --log stderr \
        --socket "$base/run/virtkeepd.sock" >>"$VK_SCRATCH/vkd-$name.log" 2>&1 &
    DPID[$name]=$!
    vk_on_exit "kill -9 -- -${DPID[$name]} 2>/dev/null || true"
}
dlogs() {
    local n
    for n in alpha beta; do
        sed "s/^/  virtkeepd $n: /" "$VK_SCRATCH/vkd-$n.log" >&2
    done
}
q() { vk_pg_sql "$1"; }
vkc() { "$VK_BIN" --config "$fleet/virtkeep.conf" "$@"; }
expect() { [ "$1" = "$2" ] || vk_fail "$3: '$1', expected '$2'"; }
# wait_sql SECONDS WHAT SQL: until SQL prints something other than 0.
wait_sql() {
    local secs=$1 what=$2 sql=$3 i
    for ((i = 0; i < secs * 2; i++)); do
        case $(q "$sql" 2>/dev/null) in
        "" | 0) sleep 0.5 ;;
        *) return 0 ;;
        esac
    done
    dlogs
    vk_fail "no $what after $secs s"
}

# alpha first: a daemon alone on the catalog still plans a domain it does
# not have (its failure shows); once another host heartbeats, it does not.
daemon src alpha
wait_sql 60 "registration of alpha" "SELECT count(*) FROM hosts WHERE name = 'alpha'"
daemon dst beta
wait_sql 120 "committed backups of both domains on alpha" \
    "SELECT CASE WHEN count(DISTINCT domain_id) >= 2 THEN 1 ELSE 0 END FROM backups
     WHERE status = 'committed' AND host = 'alpha'"
vkc hosts --json >"$VK_SCRATCH/hosts.json" || {
    dlogs
    vk_fail "virtkeep hosts failed"
}
h=$VK_SCRATCH/hosts.json
expect "$(jq -r '[.hosts[] | select(.state == "up") | .host] | join(",")' "$h")" alpha,beta \
    "hosts up"
expect "$(jq -r '.hosts[] | select(.host == "alpha") | .domains | sort | join(",")' "$h")" \
    "$(printf '%s\n' "$dom" "$dom2" | sort | paste -sd,)" "domains of alpha"
expect "$(jq -r '.hosts[] | select(.host == "beta") | .uri' "$h")" "$VK_MIG_DST" "URI of beta"
vkc hosts >&2
vk_log "alpha backed up $dom; hosts: $(jq -c '[.hosts[] | {host, state, domains}]' "$h")"

# ---- live migration alpha -> beta, mid-schedule
vk_mig_write src "$dom" 0x22 8M 2M
moved=$(date +%s)
ok=0
for _ in 1 2 3 4 5; do # a backup in flight makes libvirt refuse: retry
    if timeout 120 "$VK_BIN" --config "$fleet/virtkeep.conf" -c "$VK_MIG_SRC" migrate "$dom" \
        --to "$VK_MIG_DST" --migrate-uri tcp://127.0.0.1 --unsafe --json >"$VK_SCRATCH/mig.json" \
        2>"$VK_SCRATCH/mig.err"; then
        ok=1
        break
    fi
    sed 's/^/  migrate: /' "$VK_SCRATCH/mig.err" >&2
    sleep 2
done
[ "$ok" = 1 ] || vk_fail "the migration of $dom failed"
expect "$(q "SELECT from_host || '>' || to_host || ':' || kind FROM moves WHERE domain = '$dom'")" \
    "alpha>beta:migrate" "the recorded move"
vk_mig_write dst "$dom" 0x33 20M 1M
wait_sql 120 "committed backup on beta after the move" \
    "SELECT count(*) FROM backups WHERE status = 'committed' AND host = 'beta' AND started >= $moved"
first=$(q "SELECT id || ' ' || level FROM backups WHERE host = 'beta' AND status = 'committed'
           ORDER BY started LIMIT 1")
case $first in
*" inc") vk_log "beta continued the chain: $first" ;;
*)
    dlogs
    vk_fail "beta's first backup of $dom is not an incremental: $first"
    ;;
esac
grep -q "domain '$dom': inc backup, the chain continues" "$VK_SCRATCH/vkd-beta.log" || {
    dlogs
    vk_fail "beta's daemon did not log that the chain continues"
}
expect "$(q "SELECT host FROM domains WHERE name = '$dom'")" beta "the domain's host after the move"
expect "$(q "SELECT count(*) FROM backups b JOIN domains d ON d.id = b.domain_id
             WHERE d.name = '$dom' AND b.host = 'alpha' AND b.started > $moved + 5")" 0 \
    "backups of $dom on alpha after the move"

# ---- beta dies mid-backup: kill -9 of its daemon and of its workers (its
# process group) while a backup job of beta runs
vk_mig_write dst "$dom" 0x44 24M 4M
for ((i = 0; i < 900; i++)); do
    [ "$(q "SELECT count(*) FROM jobs WHERE host = 'beta' AND state = 'running'
             AND kind = 'backup'" 2>/dev/null)" = 1 ] && break
    sleep 0.1
done
job=$(q "SELECT id FROM jobs WHERE host = 'beta' AND state = 'running' AND kind = 'backup'")
[ -n "$job" ] || vk_fail "beta ran no backup job in 90 s"
kill -9 -- -"${DPID[beta]}" 2>/dev/null || vk_fail "cannot kill beta's virtkeepd"
killed=$(date +%s)
vk_log "killed beta's virtkeepd and workers during its backup job $job"
expect "$(q "SELECT state FROM jobs WHERE id = $job")" running "job $job right after the kill"
wait_sql 90 "failure of beta's job $job by alpha" \
    "SELECT count(*) FROM jobs WHERE id = $job AND state = 'failed'"
lost=$(($(date +%s) - killed))
err=$(q "SELECT error FROM jobs WHERE id = $job")
case $err in
"host 'beta' stopped heartbeating"*"marked failed by host 'alpha'") ;;
*) vk_fail "job $job of the dead host failed with: $err" ;;
esac
[ "$lost" -ge 10 ] || vk_fail "job $job was failed ${lost}s after the kill, before beta's lease expired"
expect "$(q "SELECT count(*) FROM backups WHERE host = 'beta' AND status = 'running'")" 0 \
    "running backups of the dead host beta"
vkc status >"$VK_SCRATCH/status.txt" 2>&1 || true
grep -q "host 'beta' unreachable since" "$VK_SCRATCH/status.txt" || {
    cat "$VK_SCRATCH/status.txt" >&2
    vk_fail "status does not say that beta is unreachable"
}
# a host whose configuration does not name the domain sees it too
printf '[catalog]\nurl = %s\n' "$VK_PG_CATALOG" >"$VK_SCRATCH/other.conf"
"$VK_BIN" --config "$VK_SCRATCH/other.conf" status --json >"$VK_SCRATCH/status.json" \
    2>"$VK_SCRATCH/status.err" || true
jq -e . "$VK_SCRATCH/status.json" >/dev/null || {
    cat "$VK_SCRATCH/status.json" "$VK_SCRATCH/status.err" >&2
    vk_fail "status --json printed no JSON"
}
expect "$(jq -r --arg d "$dom" '.domains[] | select(.domain == $d) |
    "\(.host) \(.host_unreachable_since != null)"' "$VK_SCRATCH/status.json")" "beta true" \
    "status from a host without the domain in its configuration"
vk_log "job $job failed by alpha ${lost}s after kill -9: $err"
vk_log "status: $(grep unreachable "$VK_SCRATCH/status.txt")"

# ---- beta comes back: it recovers its interrupted backup and resumes
back=$(date +%s)
daemon dst beta
wait_sql 120 "committed backup on beta after its restart" \
    "SELECT count(*) FROM backups WHERE status = 'committed' AND host = 'beta' AND started >= $back"
expect "$(q "SELECT count(*) FROM jobs WHERE domain = '$dom' AND state = 'running'
             AND started < $back")" 0 "jobs left running from before the restart"
vk_log "beta resumed: $(q "SELECT id || ' ' || level FROM backups WHERE host = 'beta'
                              AND started >= $back ORDER BY started LIMIT 1")"
kill -TERM -- -"${DPID[beta]}" 2>/dev/null || true
vk_wait_for 30 bash -c "! kill -0 ${DPID[beta]} 2>/dev/null" || vk_fail "beta's virtkeepd did not stop"

# ---- never two backup jobs of the domain at once, over the whole run
q "SELECT host, started, CASE WHEN finished = 0 THEN 9999999999 ELSE finished END FROM jobs
   WHERE domain = '$dom' AND kind = 'backup' ORDER BY started" >"$VK_SCRATCH/jobs2.txt"
python3 - "$VK_SCRATCH/jobs2.txt" <<'PY' || vk_fail "two backup jobs of the domain overlapped"
import sys
rows = [l.split('|') for l in open(sys.argv[1]).read().split() if l]
rows = [(h, int(s), int(f)) for h, s, f in rows]
for i, a in enumerate(rows):
    for b in rows[i + 1:]:
        if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]:
            sys.exit("overlap: %r %r" % (a, b))
print("%d backup jobs, none overlapping across hosts" % len(rows), file=sys.stderr)
PY

# ---- every RPO of the host that never failed is met: $dom2 ran on alpha
# the whole time (beside a migration, a dead host and its takeover).  Each
# committed backup of it comes from alpha, and the exposure (time since the
# start of the newest committed backup) never passed the RPO (30 s) once
# the first backup was in: before each commit, and now.
expect "$(q "SELECT count(*) FROM backups b JOIN domains d ON d.id = b.domain_id
             WHERE d.name = '$dom2' AND b.host <> 'alpha'")" 0 "backups of $dom2 not by alpha"
q "SELECT b.started, b.finished FROM backups b JOIN domains d ON d.id = b.domain_id
   WHERE d.name = '$dom2' AND b.status = 'committed' ORDER BY b.started" >"$VK_SCRATCH/rpo2.txt"
python3 - "$VK_SCRATCH/rpo2.txt" "$(date +%s)" 30 <<'PY' || {
import sys
rows = [tuple(map(int, l.split('|'))) for l in open(sys.argv[1]).read().split() if l]
now, rpo = int(sys.argv[2]), int(sys.argv[3])
if len(rows) < 3:
    sys.exit("only %d committed backups" % len(rows))
worst = max([b[1] - a[0] for a, b in zip(rows, rows[1:])] + [now - rows[-1][0]])
print("%d committed backups, worst exposure %d s (rpo %d s)" % (len(rows), worst, rpo),
      file=sys.stderr)
sys.exit(0 if worst <= rpo else "exposure %d s > rpo %d s" % (worst, rpo))
PY
    dlogs
    vk_fail "the RPO of $dom2 on alpha was not met"
}

# ---- the latest point restores identical to the disk
kill -TERM -- -"${DPID[alpha]}" 2>/dev/null || true
vk_wait_for 30 bash -c "! kill -0 ${DPID[alpha]} 2>/dev/null" || vk_fail "alpha's virtkeepd did not stop"
vk_mig_virsh dst destroy "$dom" >/dev/null
last=$(q "SELECT b.id FROM backups b JOIN domains d ON d.id = b.domain_id
          WHERE d.name = '$dom' AND b.status = 'committed' ORDER BY b.started DESC LIMIT 1")
vkc restore "$dom" --backup "$last" --dest "$VK_SCRATCH/restored" --json \
    >"$VK_SCRATCH/restore.json" 2>"$VK_SCRATCH/restore.err" || {
    cat "$VK_SCRATCH/restore.err" >&2
    vk_fail "restore of $last failed"
}
qemu-img compare -q "$VK_SCRATCH/images/$dom-vda.qcow2" "$VK_SCRATCH/restored/vda.qcow2" ||
    vk_fail "the restore of $last differs from the disk of $dom"
vk_log "PASS: $last (taken on $(q "SELECT host FROM backups WHERE id = '$last'")) restores identical"
