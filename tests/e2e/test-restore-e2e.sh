#!/bin/bash
# End-to-end test of `virtkeep restore` and `virtkeep verify` against real
# libvirtd/QEMU and `virtkeep backup`: full, write, inc, write, inc, write,
# diff, with the same region rewritten before every backup.  The guest
# writes nothing by itself, so the disk at each backup is the blank disk plus
# the writes made before it: a model (python) builds that reference for every
# point.  Each point restored with --backup ID must equal its reference
# (qemu-img compare), the latest restore must fetch exactly the frames the
# merged map asks for, and verify must pass, then name a flipped chunk.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img

dom=vk-restore-$$-$RANDOM
size=128M
vk_domain_create "$dom" "$size" 1
vk_domain_start "$dom"

: >"$VK_SCRATCH/writes"
write() {
    vk_domain_write "$dom" vda "$1" "$2" "$3"
    echo "$1 $2 $3" >>"$VK_SCRATCH/writes"
}

# reference N: the raw disk after the first N writes.
reference() {
    python3 - "$VK_SCRATCH/writes" "$1" "$VK_SCRATCH/ref-$1.raw" "$size" <<'PY'
import sys
def num(s):
    m = {'k': 1 << 10, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    return int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s)
lines = open(sys.argv[1]).read().split('\n')[:int(sys.argv[2])]
with open(sys.argv[3], 'wb') as f:
    f.truncate(num(sys.argv[4]))
    for l in lines:
        if not l.strip():
            continue
        pat, off, ln = l.split()
        f.seek(num(off))
        f.write(bytes([int(pat, 16)]) * num(ln))
PY
}

ids=()
backup_point() {
    sleep 1 # backup ids have a resolution of one second
    vk_backup 0 "$dom" --level "$1"
    vk_expect_eq "$(vk_bk .level)" "$1" "level of the backup"
    ids+=("$(vk_bk .backup)")
    reference "$(wc -l <"$VK_SCRATCH/writes")"
    mv "$VK_SCRATCH/ref-$(wc -l <"$VK_SCRATCH/writes").raw" "$VK_SCRATCH/point-${#ids[@]}.raw"
}

write 0x11 0 8M
write 0x12 20M 3M
write 0x13 100M 4M
backup_point full
write 0x21 4M 4M # the same region, rewritten before every backup
write 0x22 30M 1M
backup_point inc
write 0x31 4M 4M
write 0x32 21M 64k # part of a chunk of the full
backup_point inc
write 0x41 4M 4M
write 0x42 60M 2M
backup_point diff

restore_point() { # N: restore point N into a fresh directory and compare
    local n=$1 dest=$VK_SCRATCH/restore-$1
    vk_vk restore "$dom" --backup "${ids[$((n - 1))]}" --dest "$dest" --json \
        >"$VK_SCRATCH/restore-$n.json" 2>"$VK_SCRATCH/restore-$n.err" || {
        cat "$VK_SCRATCH/restore-$n.err" >&2
        vk_fail "restore of ${ids[$((n - 1))]} failed"
    }
    [ -f "$dest/vda.qcow2" ] || vk_fail "restore of point $n left no $dest/vda.qcow2"
    qemu-img compare -q -f qcow2 -F raw "$dest/vda.qcow2" "$VK_SCRATCH/point-$n.raw" ||
        vk_fail "restore of point $n (${ids[$((n - 1))]}) differs from its reference"
    vk_log "point $n (${ids[$((n - 1))]}) restored identical"
}

for n in 1 2 3 4; do
    restore_point "$n"
done

# The latest point is full + diff: its chain has two backups and the bytes
# fetched are exactly the merged map's frames (each block read once).
j=$VK_SCRATCH/restore-4.json
vk_expect_eq "$(jq -r '.chain | length' "$j")" 2 "chain length of the diff"
vk_expect_eq "$(jq -r '.disks[0].frame_bytes_fetched' "$j")" \
    "$(jq -r '.disks[0].merged_frame_bytes' "$j")" "frame bytes fetched"
# Point 3 (full + inc + inc): 4-8M was rewritten in both incs, yet only one
# copy is read: the raw bytes decompressed never exceed the data written by
# more than the partly overridden chunks (at most one 4 MiB chunk here).
j=$VK_SCRATCH/restore-3.json
vk_expect_eq "$(jq -r '.chain | length' "$j")" 3 "chain length of the second inc"
raw=$(jq -r '.disks[0].raw_bytes_decompressed' "$j")
wr=$(jq -r '.disks[0].bytes_written' "$j")
[ "$raw" -le $((wr + 4 * M)) ] || vk_fail "raw bytes decompressed $raw exceed written $wr + 4 MiB"

# Restoring onto an existing file is refused, --force replaces it.
rc=0
vk_vk restore "$dom" --dest "$VK_SCRATCH/restore-4" 2>"$VK_SCRATCH/force.err" || rc=$?
[ "$rc" != 0 ] || vk_fail "restore onto an existing image was not refused"
vk_expect_grep "$VK_SCRATCH/force.err" "--force" "refusal message"
vk_vk restore "$dom" --at now --force --dest "$VK_SCRATCH/restore-4" >/dev/null ||
    vk_fail "restore --force failed"
qemu-img compare -q -f qcow2 -F raw "$VK_SCRATCH/restore-4/vda.qcow2" "$VK_SCRATCH/point-4.raw" ||
    vk_fail "restore --force differs from the reference"

# verify passes, then names a flipped byte in a chunk.
vk_vk verify "$dom" >/dev/null || vk_fail "verify of a sound chain failed"
tar=$VK_BK_TARGET/$dom/${ids[0]}/vda.tar
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
rc=0
vk_vk verify "${ids[0]}" >/dev/null 2>"$VK_SCRATCH/verify.err" || rc=$?
vk_expect_eq "$rc" 1 "exit status of verify on a corrupt chunk"
vk_expect_grep "$VK_SCRATCH/verify.err" "${ids[0]}.*vda.*chunk at offset" "verify error"
rc=0
vk_vk restore "$dom" --backup "${ids[1]}" --dest "$VK_SCRATCH/corrupt" 2>"$VK_SCRATCH/rc.err" || rc=$?
vk_expect_eq "$rc" 1 "exit status of restore from a corrupt chunk"
vk_expect_grep "$VK_SCRATCH/rc.err" "chunk at offset" "restore error"
[ ! -e "$VK_SCRATCH/corrupt/vda.qcow2" ] || vk_fail "a half-restored image was left behind"
[ -z "$(ls -A "$VK_SCRATCH/corrupt")" ] || vk_fail "temporary files were left in the destination"
vk_log "PASS"
