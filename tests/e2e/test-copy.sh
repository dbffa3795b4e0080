#!/bin/bash
# `virtkeep copy`: a local chain (full -> inc -> diff on the file target
# "main") copied to an SSH target (the harness sshd) and to an S3 target
# (the harness s3rver).  The copies are byte-identical to the originals and
# recorded in the catalog (list/show); a second copy is a no-op; restores
# from each copy equal the local one and the expected content; a restore
# without --from reads the copy with the best recorded read throughput; a
# corrupt source is refused (nothing left on the destination) or passed
# over for another copy; a corrupt remote copy is caught by verify --from.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img sqlite3 cmp
vk_start_sshd
vk_start_s3rver vk-copy
sshdir=$VK_SCRATCH/ssh-target
s3dir=$VK_S3_DIR/data/$VK_S3_BUCKET/cp
mkdir -p "$sshdir" "$VK_SCRATCH/spare" "$VK_SCRATCH/spare2"
vk_bk_add_target spare "$VK_SCRATCH/spare"
vk_bk_add_target spare2 "$VK_SCRATCH/spare2"
cat >>"$VK_BK_CONFIG" <<EOF

[target offsite]
url = ssh://$VK_SSH_USER@$VK_SSH_HOST:$VK_SSH_PORT$sshdir
key_file = $VK_SSH_KEY
known_hosts = $VK_SSH_KNOWN_HOSTS

[target cloud]
url = s3://$VK_S3_BUCKET/cp?endpoint=$VK_S3_ENDPOINT&region=$VK_S3_REGION
access_key_id = $VK_S3_ACCESS_KEY
secret_key_file = $VK_S3_SECRET_FILE
EOF

dom=vk-copy-$$-$RANDOM
size=64M
vk_domain_create "$dom" "$size" 1
# 20 MiB of random data first: archives of several copy blocks.
head -c 20M /dev/urandom >"$VK_SCRATCH/base.raw"
qemu-img convert -n -f raw -O qcow2 "$VK_SCRATCH/base.raw" "$(vk_domain_image "$dom" vda)"
vk_domain_start "$dom"

# The chain, with the expected content of its latest point.
[ "$(stat -c %s "$VK_SCRATCH/base.raw")" = $((20 * M)) ] || vk_fail "no random base image"
vk_domain_write "$dom" vda 0x11 0 6M
vk_domain_write "$dom" vda 0x12 30M 2M
vk_backup 0 "$dom" --level full
full=$(vk_bk .backup)
sleep 1
vk_domain_write "$dom" vda 0x21 2M 1M
vk_backup 0 "$dom" --level inc
inc=$(vk_bk .backup)
sleep 1
vk_domain_write "$dom" vda 0x31 50M 3M
vk_backup 0 "$dom" --level diff
diff=$(vk_bk .backup)
ids=("$full" "$inc" "$diff")
cp "$VK_SCRATCH/base.raw" "$VK_SCRATCH/expected.raw"
python3 - "$VK_SCRATCH/expected.raw" <<'PY'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.truncate(64 << 20)
    for pat, off, ln in ((0x11, 0, 6), (0x12, 30, 2), (0x21, 2, 1), (0x31, 50, 3)):
        f.seek(off << 20)
        f.write(bytes([pat]) * (ln << 20))
PY

# copy_ok OUT ARGS...: virtkeep copy ARGS --json into OUT, which must succeed.
copy_ok() {
    local out=$VK_SCRATCH/$1
    shift
    vk_vk copy "$@" --json >"$out" 2>"$out.err" || {
        cat "$out.err" >&2
        vk_fail "virtkeep copy $* failed"
    }
}

# same_tree DIR: the objects of $dom in DIR (an sshd directory, or s3rver's
# files) are byte-identical to those on main.
same_tree() {
    local id f suffix=${2:-}
    for id in "${ids[@]}"; do
        for f in vda.tar manifest.json; do
            cmp "$VK_BK_TARGET/$dom/$id/$f" "$1/$dom/$id/$f$suffix" ||
                vk_fail "the copy of $id/$f in '$1' differs from the original"
        done
    done
}

for t in offsite cloud; do
    copy_ok "copy-$t.json" "$dom" --to "$t"
    j=$VK_SCRATCH/copy-$t.json
    vk_expect_eq "$(jq -r .objects_copied "$j")" 6 "objects copied to $t"
    vk_expect_eq "$(jq -r .backups_copied "$j")" 3 "backups copied to $t"
    # Oldest first, each backup's manifest after its archive.
    vk_expect_eq "$(jq -r '[.items[] | "\(.backup)/\(.disk // "manifest")"] | join(" ")' "$j")" \
        "$full/vda $full/manifest $inc/vda $inc/manifest $diff/vda $diff/manifest" \
        "order of the copies to $t"
    vk_expect_eq "$(jq -r '[.items[].source] | unique | join(",")' "$j")" main "source ($t)"
done
same_tree "$sshdir"
same_tree "$s3dir" ._S3rver_object
[ -z "$(find "$sshdir" -name '*.vk-tmp-*')" ] || vk_fail "temporary objects left on the sshd"

# list and show know the new copies, with the original digests.
vk_list "$dom"
loc() { # ID TARGET DISK: "key size sha256" of that location in list --json
    jq -r --arg id "$1" --arg t "$2" --arg d "$3" '.backups[] | select(.id == $id) |
        .locations[] | select(.target == $t and (.disk // "manifest") == $d) |
        "\(.key) \(.size) \(.sha256)"' "$VK_SCRATCH/list.json"
}
for id in "${ids[@]}"; do
    for d in vda manifest; do
        want=$(loc "$id" main "$d")
        [ -n "$want" ] || vk_fail "list shows no location of $id ($d) on main"
        for t in offsite cloud; do
            vk_expect_eq "$(loc "$id" "$t" "$d")" "$want" "location of $id ($d) on $t in list"
        done
    done
done
vk_vk show "$diff" --json >"$VK_SCRATCH/show.json" || vk_fail "show $diff failed"
vk_expect_eq "$(jq -r '[.locations[].target] | unique | join(",")' "$VK_SCRATCH/show.json")" \
    cloud,main,offsite "targets of $diff in show --json"

# A second copy is a no-op: nothing copied, nothing touched.
before=$(stat -c %Y.%s "$sshdir/$dom/$full/vda.tar")
for t in offsite cloud; do
    copy_ok "again-$t.json" "$dom" --to "$t"
    j=$VK_SCRATCH/again-$t.json
    vk_expect_eq "$(jq -r .objects_copied "$j")" 0 "objects copied by a second copy to $t"
    vk_expect_eq "$(jq -r .backups_skipped "$j")" 3 "backups skipped by a second copy to $t"
    vk_expect_eq "$(jq -r '[.items[].action] | unique | join(",")' "$j")" skipped "actions ($t)"
done
vk_expect_eq "$(stat -c %Y.%s "$sshdir/$dom/$full/vda.tar")" "$before" "the SSH copy after a no-op"

# Restores from each copy equal the local one and the expected content.
for t in main offsite cloud; do
    vk_vk restore "$dom" --from "$t" --dest "$VK_SCRATCH/r-$t" >/dev/null 2>"$VK_SCRATCH/r-$t.err" || {
        cat "$VK_SCRATCH/r-$t.err" >&2
        vk_fail "restore --from $t failed"
    }
    qemu-img compare -q -f qcow2 -F raw "$VK_SCRATCH/r-$t/vda.qcow2" "$VK_SCRATCH/expected.raw" ||
        vk_fail "the restore from $t differs from the expected content"
    qemu-img compare -q -f qcow2 "$VK_SCRATCH/r-$t/vda.qcow2" "$VK_SCRATCH/r-main/vda.qcow2" ||
        vk_fail "the restore from $t differs from the local restore"
done
vk_log "restores from main, offsite and cloud are identical"

# Without --from, the copy with the best read throughput is read.  Recorded
# samples decide: make one target by far the fastest (newest samples), then
# see which target the restore records a new read sample for.
sql() {
    sqlite3 -cmd '.timeout 5000' "$VK_BK_CATALOG" "$@"
}
# Read samples other than the manifest of the restored backup alone (a
# restore may read it to learn the qcow2 options: not what the choice of an
# archive's copy is about).
msize=$(loc "$diff" main manifest | cut -d' ' -f2)
[ "$msize" -gt 0 ] || vk_fail "no manifest size of $diff"
reads() {
    sql "SELECT count(*) FROM throughput WHERE target = '$1' AND direction = 'read' AND
         bytes != $msize"
}
# rates T1 T2...: forget earlier made-up samples, then give T1 ten fresh
# samples of 100 GB/s, T2 of 50 GB/s...: newer than any real one.
rates() {
    local when=$(($(date +%s) + 100000)) bps=100000000000 t i
    sql "DELETE FROM throughput WHERE measured > $((when - 50000))"
    for t in "$@"; do
        for ((i = 0; i < 10; i++)); do
            sql "INSERT INTO throughput (target, direction, bytes, seconds, measured)
                 VALUES ('$t', 'read', $bps, 1.0, $when)"
        done
        bps=$((bps / 2))
    done
}
declare -A count
for t in cloud offsite main; do
    rates "$t"
    for u in main offsite cloud; do count[$u]=$(reads "$u"); done
    vk_vk restore "$dom" --dest "$VK_SCRATCH/pick-$t" >/dev/null 2>"$VK_SCRATCH/pick.err" || {
        cat "$VK_SCRATCH/pick.err" >&2
        vk_fail "restore without --from failed"
    }
    qemu-img compare -q -f qcow2 -F raw "$VK_SCRATCH/pick-$t/vda.qcow2" "$VK_SCRATCH/expected.raw" ||
        vk_fail "the restore that picked $t differs from the expected content"
    for u in main offsite cloud; do
        if [ "$u" = "$t" ]; then
            [ "$(reads "$u")" -gt "${count[$u]}" ] || {
                cat "$VK_SCRATCH/pick.err" >&2
                vk_fail "the restore did not read from $t, the fastest copy"
            }
        elif [ "$(reads "$u")" != "${count[$u]}" ]; then
            cat "$VK_SCRATCH/pick.err" >&2
            vk_fail "the restore read from $u too, while $t is the fastest copy"
        fi
    done
    vk_log "restore without --from read from '$t', the fastest copy"
done

# copy --from: the inc copied from S3 to another target, byte for byte.
copy_ok from.json "$inc" --to spare --from cloud
vk_expect_eq "$(jq -r '[.items[].source] | unique | join(",")' "$VK_SCRATCH/from.json")" cloud \
    "source of copy --from cloud"
cmp "$VK_BK_TARGET/$dom/$inc/vda.tar" "$VK_SCRATCH/spare/$dom/$inc/vda.tar" ||
    vk_fail "the copy from S3 differs"

# A corrupt source: with --from it fails, naming backup, disk, source and
# destination, and leaves nothing on the destination; without --from
# (main the fastest, then offsite) the next copy is read instead.
tar=$VK_BK_TARGET/$dom/$full/vda.tar
cp "$tar" "$VK_SCRATCH/full-vda.tar.orig"
flip() { # FILE: flip one byte in the middle of a data chunk of the archive
    python3 - "$1" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
p = 0
while p + 512 <= len(d) and d[p]:
    size = int(d[p + 124:p + 136].split(b'\0')[0].strip() or b'0', 8)
    if d[p:p + 5] == b'data/':
        off = p + 512 + size // 2
        break
    p += 512 + (size + 511) // 512 * 512
else:
    sys.exit("no data member in " + sys.argv[1])
with open(sys.argv[1], 'r+b') as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x5a]))
PY
}
flip "$tar"
rc=0
vk_vk copy "$full" --to spare2 --from main >/dev/null 2>"$VK_SCRATCH/bad.err" || rc=$?
vk_expect_eq "$rc" 1 "exit status of a copy from a corrupt source"
vk_expect_grep "$VK_SCRATCH/bad.err" "archive .* of backup '$full' \(disk 'vda'\) from target 'main' to target 'spare2'.*sha256" \
    "error of a copy from a corrupt source"
[ -z "$(vk_files "$VK_SCRATCH/spare2")" ] || vk_fail "a copy from a corrupt source left: $(vk_files "$VK_SCRATCH/spare2")"
rates main offsite cloud
copy_ok fallback.json "$full" --to spare2
vk_expect_eq "$(jq -r '.items[] | select(.disk == "vda") | .source' "$VK_SCRATCH/fallback.json")" \
    offsite "source after the corrupt fastest copy"
vk_expect_grep "$VK_SCRATCH/fallback.json.err" "trying the copy on target 'offsite'" "fallback warning"
cmp "$VK_SCRATCH/full-vda.tar.orig" "$VK_SCRATCH/spare2/$dom/$full/vda.tar" ||
    vk_fail "the fallback copy differs from the original"
cp "$VK_SCRATCH/full-vda.tar.orig" "$tar"

# A corrupt remote copy is caught by verify --from, and only there.
verify() { # TARGET WANT_RC
    local rc=0
    vk_vk verify "$full" --from "$1" --json >"$VK_SCRATCH/v-$1.json" 2>"$VK_SCRATCH/v-$1.err" || rc=$?
    vk_expect_eq "$rc" "$2" "exit status of verify --from $1"
}
for t in main offsite cloud; do verify "$t" 0; done
flip "$sshdir/$dom/$full/vda.tar"
flip "$s3dir/$dom/$full/vda.tar._S3rver_object"
verify main 0
for t in offsite cloud; do
    verify "$t" 1
    vk_expect_eq "$(jq -r .failed "$VK_SCRATCH/v-$t.json")" 1 "failed items of verify --from $t"
    vk_expect_grep "$VK_SCRATCH/v-$t.err" "$full.*vda.*chunk at offset" "verify error on $t"
done

# SIGINT in the middle of a put: the copy to an SSH target behind a slow link
# (tests/lib/tcp-fault-proxy.py at 4 MB/s before the harness sshd) is interrupted
# once bytes flow: exit 130, nothing under the archive's key (nor a temp
# file), no location recorded, the copy job cancelled.
pf=$VK_SCRATCH/proxy.ports
python3 "$abs_top_srcdir/tests/lib/tcp-fault-proxy.py" "$pf" 127.0.0.1 "$VK_SSH_PORT" \
    >>"$VK_SCRATCH/proxy.log" 2>&1 &
vk_on_exit "vk_kill $!"
vk_wait_for 20 test -s "$pf" || vk_fail "the fault proxy did not start: $(cat "$VK_SCRATCH/proxy.log")"
read -r pport pctl <"$pf"
echo "[127.0.0.1]:$pport $(cut -d' ' -f1,2 "$VK_SSH_DIR/host_key.pub")" >>"$VK_SSH_KNOWN_HOSTS"
slowdir=$VK_SCRATCH/slow-target
mkdir -p "$slowdir"
printf '\n[target slow]\nurl = ssh://%s@127.0.0.1:%s%s\nkey_file = %s\nknown_hosts = %s\n' \
    "$VK_SSH_USER" "$pport" "$slowdir" "$VK_SSH_KEY" "$VK_SSH_KNOWN_HOSTS" >>"$VK_BK_CONFIG"
proxy() { # COMMAND: one command on the proxy's control port, its answer
    python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall((sys.argv[2] + "\n").encode())
print(s.makefile().readline().strip())' "$pctl" "$1"
}
bytes_up() { # N: more than N bytes went from virtkeep to sshd
    [ "$(proxy stats | awk '{print $6}')" -gt "$1" ]
}
[ "$(proxy 'slow 4000000 5')" = ok ] || vk_fail "cannot slow the proxy down"
# virtkeep itself in the background (a shell function would run in a
# subshell, which is who would get the signal).
"$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" copy "$full" --to slow --from main \
    --json >"$VK_SCRATCH/int.json" 2>"$VK_SCRATCH/int.err" &
pid=$!
vk_on_exit "kill $pid 2>/dev/null || true"
vk_wait_for 30 bytes_up 1000000 ||
    vk_fail "the copy to the slow target sent nothing: $(cat "$VK_SCRATCH/int.err")"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
vk_expect_eq "$rc" 130 "exit status of an interrupted copy"
vk_expect_grep "$VK_SCRATCH/int.err" "copy to target 'slow' was interrupted" \
    "error of an interrupted copy"
jq -e '.error | test("interrupted")' "$VK_SCRATCH/int.json" >/dev/null ||
    vk_fail "the JSON of the interrupted copy has no error"
[ "$(proxy pass)" = ok ] || vk_fail "cannot reset the proxy"
[ -z "$(vk_files "$slowdir")" ] || vk_fail "an interrupted copy left: $(vk_files "$slowdir")"
vk_expect_eq "$(sql "SELECT count(*) FROM archive_locations WHERE target = 'slow'")" 0 \
    "locations recorded on the slow target"
vk_expect_eq "$(sql "SELECT state FROM jobs WHERE kind = 'copy' ORDER BY id DESC LIMIT 1")" \
    cancelled "state of the interrupted copy job"
vk_log "PASS"
