#!/bin/bash
# End-to-end test of `virtkeep drill` (src/drill.c) and of the restore
# estimator learning from it (src/plan.c), on a real running domain backed
# up (full + inc) to a file:// target:
#   - drill --json: ok, the inc restored and verified, the default scratch
#     directory (under /var/tmp) removed, the actual restore time recorded
#     in the drills table next to the estimate made before starting, and a
#     succeeded job of kind "drill";
#   - plan restore --json then estimates from that drill (source "drill",
#     the drill's id and times), and its estimate is exactly bytes /
#     (drill bytes read / drill seconds): checked numerically;
#   - --scratch: an empty directory is used and, with --keep, the image is
#     left there (and is a sound qcow2 image with the disk's size); a
#     non-empty one is refused (exit 2) and its content left alone;
#   - a flipped byte in a chunk of the full makes the drill fail loudly
#     (exit 1, the chunk named), the failure is recorded in the catalog and
#     the scratch directory is still removed;
#   - SIGINT during a drill: exit 130, recorded as cancelled, scratch removed.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq sqlite3 python3

dom=vk-drill-$$-$RANDOM
vk_domain_create "$dom" 16M 1
vk_domain_start "$dom"

vk_domain_write "$dom" vda 0x11 0 2M
vk_backup 0 "$dom" --level full
full=$(vk_bk .backup)
sleep 1 # ids are per second
vk_domain_write "$dom" vda 0x22 $((6 * M)) 1M
vk_backup 0 "$dom" --level inc
inc=$(vk_bk .backup)

sql() {
    sqlite3 "$VK_BK_CATALOG" "$1"
}

# drill_run OUT WANT_RC ARGS...: virtkeep drill ARGS --json into OUT.
drill_run() {
    local out=$VK_SCRATCH/$1 want=$2 rc=0
    shift 2
    timeout "$VK_BK_TIMEOUT" "$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" \
        drill "$@" --json >"$out" 2>"$out.err" || rc=$?
    if [ "$rc" != "$want" ]; then
        sed 's/^/  stdout: /' "$out" >&2
        sed 's/^/  stderr: /' "$out.err" >&2
        vk_fail "drill $*: exit status $rc, expected $want"
    fi
}

# ---- a good drill ----------------------------------------------------------
drill_run d1.json 0 "$dom"
d1=$VK_SCRATCH/d1.json
vk_expect_eq "$(jq -r .ok "$d1")" true "drill ok"
vk_expect_eq "$(jq -r .backup "$d1")" "$inc" "the drill restores the latest backup"
vk_expect_eq "$(jq -r '.chain | join(" ")' "$d1")" "$full $inc" "the drill's chain"
vk_expect_eq "$(jq -r .targets "$d1")" main "targets read"
scratch=$(jq -r .scratch "$d1")
case "$scratch" in
/var/tmp/virtkeep-drill-"$dom"-*) ;;
*) vk_fail "default scratch directory '$scratch' is not under /var/tmp" ;;
esac
[ ! -e "$scratch" ] || vk_fail "the scratch directory '$scratch' was not removed"
vk_expect_eq "$(jq -r .kept "$d1")" false "kept"
[ "$(jq -r .chunks_verified "$d1")" -gt 0 ] || vk_fail "no chunk was re-read by the verification"
id1=$(jq -r .drill_id "$d1")
job1=$(jq -r .job_id "$d1")

row=$(sql "SELECT state, backup_id, targets, job_id, actual_seconds > 0, bytes_read > 0,
           estimate_source FROM drills WHERE id = $id1")
vk_expect_eq "$row" "ok|$inc|main|$job1|1|1|guess" "the drill's catalog row"
actual=$(sql "SELECT actual_seconds FROM drills WHERE id = $id1")
bytes=$(sql "SELECT bytes_read FROM drills WHERE id = $id1")
est=$(sql "SELECT estimate_seconds FROM drills WHERE id = $id1")
python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(abs(a-b) > 1e-6*max(a,1))" \
    "$actual" "$(jq -r .actual_seconds "$d1")" || vk_fail "recorded time $actual differs from the JSON"
python3 -c "import sys; sys.exit(not float(sys.argv[1]) > 0)" "$est" ||
    vk_fail "no estimate was recorded before the drill ($est)"
vk_expect_eq "$(sql "SELECT kind || ' ' || state || ' ' || backup_id FROM jobs WHERE id = $job1")" \
    "drill succeeded $inc" "the drill's job"

# ---- the next plan uses it ---------------------------------------------------
vk_vk plan restore "$dom" --json >"$VK_SCRATCH/plan.json" || vk_fail "plan restore failed"
p=$VK_SCRATCH/plan.json
vk_expect_eq "$(jq -r .estimate_source "$p")" drill "plan estimate source"
vk_expect_eq "$(jq -r .drill.id "$p")" "$id1" "the drill the plan learned from"
vk_expect_eq "$(jq -r '.targets[0].source' "$p")" drill "the target's source"
python3 - "$(jq -r .drill.actual_seconds "$p")" "$actual" <<'PY' || vk_fail "plan's drill time"
import sys
a, b = map(float, sys.argv[1:])
sys.exit(abs(a - b) > 1e-6 * max(b, 1))
PY
# One drill: rate = bytes read / seconds, no overhead; the estimate of the
# same target's bytes follows exactly.
python3 - "$(jq -r '.targets[0].bytes' "$p")" "$(jq -r .estimate_seconds "$p")" \
    "$bytes" "$actual" "$(jq -r '.targets[0].overhead' "$p")" <<'PY' || vk_fail "drill-based estimate"
import sys
pb, est, db, da, ov = map(float, sys.argv[1:])
want = pb / (db / da)
print("plan bytes %d, drill %d bytes in %.3f s: want %.6f s, got %.6f s" % (pb, db, da, want, est))
sys.exit(ov != 0 or abs(est - want) > 1e-6 * max(want, 1e-3))
PY
vk_vk plan restore "$dom" >"$VK_SCRATCH/plan.txt" || vk_fail "plan restore (text) failed"
vk_expect_grep "$VK_SCRATCH/plan.txt" "source: drill" "plan restore names its source"
vk_expect_grep "$VK_SCRATCH/plan.txt" "learned from 1 drill" "plan restore names the drill"

# ---- --scratch and --keep ---------------------------------------------------------
s=$VK_SCRATCH/drill-scratch
mkdir "$s"
drill_run d2.json 0 "$dom" --backup "$full" --scratch "$s" --keep
vk_expect_eq "$(jq -r .backup "$VK_SCRATCH/d2.json")" "$full" "drill --backup"
vk_expect_eq "$(jq -r .kept "$VK_SCRATCH/d2.json")" true "kept"
[ -f "$s/vda.qcow2" ] || vk_fail "--keep left no image in '$s'"
qemu-img check -q "$s/vda.qcow2" || vk_fail "the kept image is damaged"
vk_expect_eq "$(qemu-img info --output=json "$s/vda.qcow2" | jq -r '."virtual-size"')" $((16 * M)) \
    "kept image size"
drill_run d3.json 2 "$dom" --scratch "$s"
vk_expect_grep "$VK_SCRATCH/d3.json.err" "not empty" "refusal of a non-empty scratch directory"
[ -f "$s/vda.qcow2" ] || vk_fail "a refused drill removed the content of '$s'"
vk_expect_eq "$(sql "SELECT count(*) FROM drills")" 2 "a refused drill is not recorded"

# ---- a corrupt chunk -----------------------------------------------------------
tar=$VK_BK_TARGET/$dom/$full/vda.tar
off=$(python3 - "$tar" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
p = 0
while p + 512 <= len(d) and d[p]:
    size = int(d[p + 124:p + 136].split(b'\0')[0].strip() or b'0', 8)
    if d[p:p + 5] == b'data/' and d[p + 156:p + 157] != b'x':
        print(p + 512 + size // 2)
        break
    p += 512 + (size + 511) // 512 * 512
PY
)
[ -n "$off" ] || vk_fail "no data member found in $tar"
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0]^0x5a]))' "$tar" "$off"
drill_run d4.json 1 "$dom"
d4=$VK_SCRATCH/d4.json
vk_expect_grep "$d4.err" "drill of domain '$dom'.*vda.*chunk at offset" "loud drill failure"
vk_expect_eq "$(jq -r .ok "$d4")" false "failed drill ok"
[ ! -e "$(jq -r .scratch "$d4")" ] || vk_fail "a failed drill left its scratch directory"
id4=$(jq -r .drill_id "$d4")
vk_expect_eq "$(sql "SELECT state, error LIKE '%chunk at offset%' FROM drills WHERE id = $id4")" \
    "failed|1" "the failed drill's row"
vk_expect_eq "$(sql "SELECT state FROM jobs WHERE id = $(jq -r .job_id "$d4")")" failed \
    "the failed drill's job"
# A failed drill teaches nothing: the plan still learns from the good one.
vk_vk plan restore "$dom" --json >"$VK_SCRATCH/plan2.json" || vk_fail "plan restore failed"
vk_expect_eq "$(jq -r .drill.samples "$VK_SCRATCH/plan2.json")" 2 "drills learned from (two ok)"
# ---- SIGINT ----------------------------------------------------------------------
# A second domain with 256 MiB of random data, so that the drill is still
# running when SIGINT comes (sent as soon as it says it is restoring).
big=vk-drill-big-$$-$RANDOM
vk_domain_create "$big" 256M 1
vk_fill_random "$(vk_domain_image "$big" vda)" 256M
vk_backup 0 "$big" --level copy
s=$VK_SCRATCH/sigint-scratch
"$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" drill "$big" --scratch "$s" \
    >"$VK_SCRATCH/int.out" 2>"$VK_SCRATCH/int.err" &
pid=$!
for _ in $(seq 200); do
    grep -q restoring "$VK_SCRATCH/int.err" && break
    sleep 0.05
done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
vk_expect_eq "$rc" 130 "exit status of an interrupted drill"
[ ! -e "$s" ] || vk_fail "an interrupted drill left its scratch directory '$s'"
vk_expect_eq "$(sql "SELECT state FROM drills WHERE domain = '$big'")" cancelled \
    "the interrupted drill's row"
vk_expect_eq "$(sql "SELECT state FROM jobs WHERE domain = '$big' AND kind = 'drill'")" cancelled \
    "the interrupted drill's job"
vk_log "PASS"
