#!/bin/bash
# Soak test of virtkeepd (make soak; never part of make check: it runs for
# SOAK_SECONDS, default 600).  As root, against a real libvirtd/QEMU.
#
# virtkeepd (tick 1 s) backs up 3 small running domains (policy rpo = 20s)
# to a file:// target on a small tmpfs, while the guests are written to
# (HMP qemu-io) and a fault injector, every 15-40 s, does one of:
#   kill9       SIGKILL a running backup worker (a virtkeep child of the daemon)
#   segv        SIGSEGV a running backup worker
#   disconnect  virt-admin client-disconnect of a libvirtd client of virtkeep
#               (the daemon or one of its workers)
#   fill        fill the target's filesystem (dd) for 20-40 s, then free it
# Every fault is logged with its start and end ($VK_SCRATCH/faults.log).
# Each domain's RPO exposure (virtkeep status --json) is sampled every second.
# Afterwards (guest writes stopped, daemon stopped with SIGTERM):
#   (a) exposure > rpo only inside an allowed window of a fault:
#       fault start .. fault end + rpo + retry backoff (min(rpo/4, 1h))
#       + the longest backup duration seen + 2 s (tick and backoff jitter);
#   (b) the target holds only committed objects: no .vk-tmp-* file, every
#       DOMAIN/ID directory has a manifest.json and a committed catalog row;
#   (c) no libvirt job (virsh domjobinfo) and no checkpoint that is not the
#       checkpoint of a committed backup (virsh checkpoint-list);
#   (d) each domain paused, a final `virtkeep backup`, its restore is
#       identical to the live disk (qemu-img compare);
#   and virtkeepd survived the whole run and exited 0 on SIGTERM.
# A summary with the figures is printed; exit 0 only when every check passes.
#
# Environment: SOAK_SECONDS (600), SOAK_SEED (random), VIRTKEEP_TEST_KEEP=1.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_SEED=${SOAK_SEED:-$$}
RANDOM=$SOAK_SEED
RPO=20
RETRY=$((RPO / 4 < 3600 ? RPO / 4 : 3600))

vk_bk_setup
vk_require_cmd sqlite3 jq python3 virt-admin setsid dd mount umount
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VKD" ] || vk_fail "'$VKD' is not built"

# The target on a 96 MiB tmpfs of its own, so that it can be filled.
FS=$VK_SCRATCH/fs
mkdir -p "$FS"
mount -t tmpfs -o size=96m,mode=0755 vk-soak "$FS" || vk_fail "cannot mount a tmpfs on '$FS'"
vk_on_exit "umount -l '$FS'"
TGT=$FS/target
mkdir -p "$TGT"
sed -i "s|^url = file://.*|url = file://$TGT|" "$VK_BK_CONFIG"
VK_BK_TARGET=$TGT

DOMS=()
for i in 1 2 3; do DOMS+=("vk-soak$i-$$"); done
sock=$VK_SCRATCH/virtkeepd.sock
dlog=$VK_SCRATCH/virtkeepd.log
cat >>"$VK_BK_CONFIG" <<EOF

[daemon]
socket = $sock
max_jobs = 3
max_target_jobs = 3

[policy soak]
rpo = ${RPO}s
max_chain = 6
targets = main
EOF
for d in "${DOMS[@]}"; do
    printf '\n[domain %s]\npolicy = soak\n' "$d" >>"$VK_BK_CONFIG"
    vk_domain_create "$d" 128M 1
    vk_domain_start "$d"
done
# A few MiB of data in each guest before the first backup.
for d in "${DOMS[@]}"; do
    vk_domain_write "$d" vda 0x5a 0 2M
    vk_domain_write "$d" vda 0xa5 16M 2M
done

q() { sqlite3 -cmd '.timeout 10000' "$VK_BK_CATALOG" "$1"; }
ts() { date +%s.%N | cut -c1-14; } # epoch, 1/1000 s
stamp() { date -u -d "@${1%.*}" +%H:%M:%S; }

START=$(date +%s)
END=$((START + SOAK_SECONDS))
vk_log "soak of ${SOAK_SECONDS}s (seed $SOAK_SEED), domains ${DOMS[*]}, target file://$TGT"

setsid "$VKD" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" --socket "$sock" \
    --tick 1 >"$dlog" 2>&1 &
DPID=$!
LPID=$(pgrep -x -o libvirtd || true)
vk_on_exit "kill -9 -- -$DPID 2>/dev/null || true"

STOP=$VK_SCRATCH/stop
FAULTS=$VK_SCRATCH/faults.log
SAMPLES=$VK_SCRATCH/samples.tsv
: >"$FAULTS"
: >"$SAMPLES"

# --- guest writer: 256 KiB of a random pattern at a random offset, 2-4 s apart.
writer() {
    set +e
    local d qom=/machine/peripheral/virtio-disk0/virtio-backend
    while [ ! -e "$STOP.writer" ]; do
        d=${DOMS[RANDOM % 3]}
        "${VK_VIRSH[@]}" qemu-monitor-command "$d" --hmp \
            "qemu-io -d $qom \"write -P 0x$(printf %02x $((RANDOM % 254 + 1))) $((RANDOM % 60))M 256k\"" \
            >/dev/null 2>&1
        sleep $((2 + RANDOM % 3))
    done
}

# --- sampler: each domain's RPO exposure, every second: EPOCH DOMAIN EXPOSURE.
sampler() {
    set +e
    local now
    while [ ! -e "$STOP.sampler" ]; do
        now=$(date +%s)
        vk_vk status --json 2>/dev/null |
            jq -r --arg now "$now" '.domains[] | select(.last_backup != null)
                | [$now, .domain, .rpo_exposure] | @tsv' >>"$SAMPLES"
        sleep 1
    done
}

# --- fault injector.
workers() { # running backup workers of the daemon
    local p
    for p in $(pgrep -P "$DPID" -x virtkeep); do
        grep -qa backup "/proc/$p/cmdline" 2>/dev/null && echo "$p"
    done
}
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
wait_gone() { # PID SECS
    local i
    for ((i = 0; i < $2 * 10; i++)); do gone "$1" && return 0; sleep 0.1; done
    return 1
}
vk_clients() { # libvirtd client ids whose process is the daemon or one of its children
    local id pid
    for id in $(virt-admin srv-clients-list libvirtd 2>/dev/null | awk '$1 ~ /^[0-9]+$/ {print $1}'); do
        pid=$(virt-admin client-info libvirtd "$id" 2>/dev/null |
            awk -F: '/unix_process_id/ {gsub(/ /, "", $2); print $2}')
        [ -n "$pid" ] || continue
        if [ "$pid" = "$DPID" ] || [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$DPID" ]; then
            echo "$id:$pid"
        fi
    done
}
fault() { # KIND START END DETAIL
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$FAULTS"
    vk_log "fault $1 $(stamp "$2")..$(stamp "$3") ($(awk -v a="$2" -v b="$3" 'BEGIN {printf "%.1f", b - a}') s): $4"
}
injector() {
    set +e
    local kind t0 t1 i w c hold sig
    local kinds=(kill9 segv disconnect fill)
    while :; do
        sleep $((${SOAK_FAULT_MIN:-15} + RANDOM % 26))
        [ "$(date +%s)" -lt $((END - 10)) ] && [ ! -e "$STOP.injector" ] || break
        kind=${kinds[RANDOM % 4]}
        case $kind in
        kill9 | segv)
            [ "$kind" = kill9 ] && sig=KILL || sig=SEGV
            w=
            for ((i = 0; i < 300; i++)); do # up to 30 s for a worker
                w=$(workers | shuf -n 1)
                [ -z "$w" ] || break
                sleep 0.1
            done
            if [ -z "$w" ]; then
                vk_log "fault $kind: no backup worker ran within 30 s, skipped"
                continue
            fi
            c=$(tr '\0' ' ' <"/proc/$w/cmdline" 2>/dev/null | sed 's|^[^ ]*/||' | cut -c1-100)
            t0=$(ts)
            kill -"$sig" "$w"
            wait_gone "$w" 30
            t1=$(ts)
            fault "$kind" "$t0" "$t1" "worker $w: $c"
            ;;
        disconnect)
            c=
            for ((i = 0; i < 60; i++)); do # up to 30 s for a client
                c=$(vk_clients | shuf -n 1)
                [ -z "$c" ] || break
                sleep 0.5
            done
            if [ -z "$c" ]; then
                vk_log "fault disconnect: no libvirtd client of virtkeep within 30 s, skipped"
                continue
            fi
            t0=$(ts)
            virt-admin client-disconnect libvirtd "${c%%:*}" >/dev/null 2>&1
            t1=$(ts)
            fault disconnect "$t0" "$t1" "client ${c%%:*} of pid ${c#*:}$([ "${c#*:}" = "$DPID" ] && echo ' (virtkeepd)')"
            ;;
        fill)
            hold=$((20 + RANDOM % 21))
            t0=$(ts)
            dd if=/dev/zero of="$FS/filler" bs=1M 2>/dev/null
            sleep "$hold"
            rm -f "$FS/filler"
            t1=$(ts)
            fault fill "$t0" "$t1" "target filesystem full for ${hold} s ($(df -h --output=size "$FS" | tail -1 | tr -d ' '))"
            ;;
        esac
    done
}

writer &
WPID=$!
sampler &
SPID=$!
injector &
IPID=$!
vk_on_exit "touch '$STOP.writer' '$STOP.sampler' '$STOP.injector'; kill $WPID $SPID $IPID 2>/dev/null || true"

dead=
while [ "$(date +%s)" -lt "$END" ]; do
    if ! kill -0 "$DPID" 2>/dev/null; then
        dead="virtkeepd died at $(date -u +%H:%M:%S)"
        vk_log "$dead"
        break
    fi
    sleep 2
done
vk_log "soak time over; stopping the fault injector, the writer and the sampler"
touch "$STOP.injector"
wait "$IPID" || true # a fill in progress is freed first
touch "$STOP.writer" "$STOP.sampler"
wait "$WPID" "$SPID" || true
SAMPLE_END=$(date +%s)

drc=none
if [ -z "$dead" ]; then
    kill -TERM "$DPID"
    vk_wait_for 120 bash -c "! kill -0 $DPID 2>/dev/null" || vk_log "virtkeepd did not stop on SIGTERM"
    drc=0
    wait "$DPID" || drc=$?
else
    wait "$DPID" || drc=$?
fi

declare -A RES
fails=0
res() { # CHECK pass|FAIL DETAIL
    RES[$1]="$2  $3"
    [ "$2" = pass ] || fails=$((fails + 1))
}

# (b) the target: only committed objects.
bad_b=()
while IFS= read -r f; do bad_b+=("temp file $f"); done < <(cd "$TGT" && find . -name '*.vk-tmp-*')
committed=$(q "SELECT d.name || '/' || b.id FROM backups b JOIN domains d ON d.id = b.domain_id
               WHERE b.status = 'committed'")
ndirs=0
for dir in "$TGT"/*/*/; do
    [ -d "$dir" ] || continue
    ndirs=$((ndirs + 1))
    rel=${dir#"$TGT"/}
    rel=${rel%/}
    [ -f "$dir/manifest.json" ] || bad_b+=("$rel has no manifest.json")
    vk_has_line "$committed" "$rel" || bad_b+=("$rel has no committed catalog row")
done
if [ ${#bad_b[@]} = 0 ]; then
    res b pass "$ndirs backup directories, each with a manifest and a committed row; no temp file"
else
    printf '  (b) %s\n' "${bad_b[@]}" >&2
    res b FAIL "${#bad_b[@]} problems: ${bad_b[0]}"
fi

# (c) no libvirt job, no checkpoint without a committed backup.
bad_c=()
ncp=0
for d in "${DOMS[@]}"; do
    ji=$("${VK_VIRSH[@]}" domjobinfo "$d" 2>&1 || true)
    grep -Eq '^Job type: +None' <<<"$ji" || bad_c+=("$d: libvirt job: $(head -1 <<<"$ji")")
    cps=$(q "SELECT b.checkpoint FROM backups b JOIN domains d ON d.id = b.domain_id
             WHERE d.name = '$d' AND b.status = 'committed' AND b.checkpoint IS NOT NULL")
    for cp in $(vk_checkpoints "$d"); do
        ncp=$((ncp + 1))
        vk_has_line "$cps" "$cp" || bad_c+=("$d: checkpoint $cp has no committed backup")
    done
done
if [ ${#bad_c[@]} = 0 ]; then
    res c pass "no libvirt job; $ncp checkpoints, each of a committed backup"
else
    printf '  (c) %s\n' "${bad_c[@]}" >&2
    res c FAIL "${#bad_c[@]} problems: ${bad_c[0]}"
fi

# Figures of the run (before the final manual backups).
durmax=$(q "SELECT ifnull(max(finished - started), 0) FROM backups WHERE status = 'committed'")
figures=$VK_SCRATCH/figures.tsv
for d in "${DOMS[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$d" \
        "$(q "SELECT count(*) FROM backups b JOIN domains d ON d.id = b.domain_id WHERE d.name = '$d' AND status = 'committed'")" \
        "$(q "SELECT count(*) FROM backups b JOIN domains d ON d.id = b.domain_id WHERE d.name = '$d' AND status = 'committed' AND level = 'full'")" \
        "$(q "SELECT count(*) FROM backups b JOIN domains d ON d.id = b.domain_id WHERE d.name = '$d' AND status = 'failed'")"
done >"$figures"

# (a) RPO exposure outside the allowed windows of the faults.
aout=$VK_SCRATCH/exposure.txt
arc=0
python3 - "$SAMPLES" "$FAULTS" "$RPO" "$RETRY" "$durmax" "${DOMS[@]}" >"$aout" <<'EOF' || arc=$?
import sys
samples, faults, rpo, retry, dur = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
doms = sys.argv[6:]
slack = 2  # the tick (1 s) and the backoff jitter (<= 1 s here)
win = []
for line in open(faults):
    kind, t0, t1, _ = line.rstrip("\n").split("\t", 3)
    win.append((float(t0), float(t1) + rpo + retry + dur + slack))
mx = {d: 0 for d in doms}
mxout = {d: 0 for d in doms}
n = {d: 0 for d in doms}
viol = []
for line in open(samples):
    t, d, e = line.split("\t")
    t, e = int(t), int(e)
    if d not in mx:
        continue
    n[d] += 1
    mx[d] = max(mx[d], e)
    if any(a <= t <= b for a, b in win):
        continue
    mxout[d] = max(mxout[d], e)
    if e > rpo:
        viol.append((t, d, e))
for d in doms:
    print(f"{d}\t{n[d]}\t{mx[d]}\t{mxout[d]}")
runs = []  # violations grouped into runs of consecutive seconds per domain
for t, d, e in sorted(viol, key=lambda v: (v[1], v[0])):
    if runs and runs[-1][0] == d and t - runs[-1][2] <= 2:
        runs[-1][2] = t; runs[-1][3] = max(runs[-1][3], e)
    else:
        runs.append([d, t, t, e])
for d, a, b, e in runs:
    print(f"VIOLATION\t{d}\t{a}\t{b}\t{e}")
sys.exit(1 if viol else 0)
EOF
nviol=$(grep -c '^VIOLATION' "$aout" || true)
nsamples=$(wc -l <"$SAMPLES")
if [ "$arc" = 0 ] && [ "$nsamples" -gt 0 ]; then
    res a pass "exposure > ${RPO}s only inside fault windows ($nsamples samples)"
elif [ "$nsamples" = 0 ]; then
    res a FAIL "no exposure samples"
else
    res a FAIL "$nviol periods of exposure > ${RPO}s outside fault windows"
fi

# (d) pause each domain, a final backup, its restore against the live disk.
bad_d=()
for d in "${DOMS[@]}"; do
    "${VK_VIRSH[@]}" suspend "$d" >/dev/null
    vk_domain_flush "$d" vda
    if ! vk_vk backup "$d" --target main --json >"$VK_SCRATCH/final-$d.json" 2>"$VK_SCRATCH/final-$d.err"; then
        bad_d+=("$d: final backup failed: $(tail -1 "$VK_SCRATCH/final-$d.err")")
        continue
    fi
    dest=$VK_SCRATCH/restore-$d
    if ! vk_vk restore "$d" --dest "$dest" >/dev/null 2>"$VK_SCRATCH/restore-$d.err"; then
        bad_d+=("$d: restore failed: $(tail -1 "$VK_SCRATCH/restore-$d.err")")
        continue
    fi
    out=$(qemu-img compare -U "$dest/vda.qcow2" "$(vk_domain_image "$d" vda)" 2>&1) ||
        bad_d+=("$d: restore of $(jq -r .backup "$VK_SCRATCH/final-$d.json") differs from the live disk: $out")
    rm -rf "$dest"
done
if [ ${#bad_d[@]} = 0 ]; then
    res d pass "the final backup of each domain restores identical to its paused disk"
else
    printf '  (d) %s\n' "${bad_d[@]}" >&2
    res d FAIL "${#bad_d[@]} problems: ${bad_d[0]}"
fi

if [ -z "$dead" ] && [ "$drc" = 0 ]; then
    res daemon pass "virtkeepd ran the whole soak and exited 0 on SIGTERM"
else
    res daemon FAIL "${dead:-virtkeepd exited $drc on SIGTERM}"
fi
if [ -n "$LPID" ] && [ "$(pgrep -x -o libvirtd || true)" = "$LPID" ]; then
    res libvirtd pass "libvirtd (pid $LPID) ran the whole soak"
else
    res libvirtd FAIL "libvirtd (pid ${LPID:-?}) did not survive the soak (see dmesg)"
fi
crashes=$(grep -Eci 'assert|segfault|sanitizer|abort' "$dlog" || true)

# --- summary.
{
    echo
    echo "virtkeep soak summary: ${SOAK_SECONDS}s, seed $SOAK_SEED, rpo ${RPO}s, retry backoff ${RETRY}s," \
        "longest backup ${durmax}s, target tmpfs $(df -h --output=size "$FS" | tail -1 | tr -d ' ')"
    printf '  %-18s %9s %6s %7s %9s %12s %16s\n' DOMAIN COMMITTED FULLS FAILED SAMPLES MAX-EXPOSURE OUTSIDE-WINDOWS
    while IFS=$'\t' read -r d c f x; do
        IFS=$'\t' read -r _ n mx mo < <(grep -P "^\Q$d\E\t" "$aout")
        printf '  %-18s %9s %6s %7s %9s %11ss %15ss\n' "$d" "$c" "$f" "$x" "$n" "$mx" "$mo"
    done <"$figures"
    echo "  faults (start..end UTC, duration):"
    for k in kill9 segv disconnect fill; do
        printf '    %-11s %s\n' "$k" "$(awk -F'\t' -v k="$k" '$1 == k' "$FAULTS" | wc -l)"
    done
    while IFS=$'\t' read -r k a b det; do
        printf '      %-11s %s..%s %5.1fs  %s\n' "$k" "$(stamp "$a")" "$(stamp "$b")" \
            "$(awk -v a="$a" -v b="$b" 'BEGIN {print b - a}')" "$det"
    done <"$FAULTS"
    echo "  violations (exposure > ${RPO}s outside fault windows): $nviol"
    while IFS=$'\t' read -r _ d a b e; do
        printf '      %s %s..%s max %ss\n' "$d" "$(stamp "$a")" "$(stamp "$b")" "$e"
    done < <(grep '^VIOLATION' "$aout" || true)
    echo "  daemon log: $(wc -l <"$dlog") lines, $crashes lines naming an assert/abort/segfault"
    printf '  (a) exposure   %s\n' "${RES[a]}"
    printf '  (b) target     %s\n' "${RES[b]}"
    printf '  (c) libvirt    %s\n' "${RES[c]}"
    printf '  (d) restore    %s\n' "${RES[d]}"
    printf '  daemon         %s\n' "${RES[daemon]}"
    printf '  libvirtd       %s\n' "${RES[libvirtd]}"
    [ "$fails" = 0 ] && echo "soak PASS" || echo "soak FAIL ($fails checks failed)"
} | tee "$VK_SCRATCH/summary.txt"
if [ "${VIRTKEEP_TEST_KEEP:-0}" = 1 ]; then
    vk_log "kept: $VK_SCRATCH (faults.log, samples.tsv, virtkeepd.log, catalog.db)"
fi
[ "$fails" = 0 ]
