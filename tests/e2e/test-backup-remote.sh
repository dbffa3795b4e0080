#!/bin/bash
# Backup chains written directly to remote targets: one domain backs up
# full -> inc -> diff to an SSH/SFTP target (the harness sshd), another to
# an S3 target (the harness s3rver), a third to radosgw (an S3 server that
# checks every signature and payload digest).  The guest writes nothing by itself, so
# each point is the blank disk plus the writes made before it: a model
# builds that reference, and every point restored with --from the remote
# target must equal it (qemu-img compare).  Then the S3 chain is copied to
# the SSH target (`virtkeep copy`) and restored from there: the same bytes.
# `virtkeep verify` passes against each target.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img
vk_start_sshd
vk_start_s3rver vk-remote
sshdir=$VK_SCRATCH/ssh-target
mkdir -p "$sshdir"
cat >>"$VK_BK_CONFIG" <<EOF

[target offsite]
url = ssh://$VK_SSH_USER@$VK_SSH_HOST:$VK_SSH_PORT$sshdir
key_file = $VK_SSH_KEY
known_hosts = $VK_SSH_KNOWN_HOSTS

[target cloud]
url = s3://$VK_S3_BUCKET/vk?endpoint=$VK_S3_ENDPOINT&region=$VK_S3_REGION
access_key_id = $VK_S3_ACCESS_KEY
secret_key_file = $VK_S3_SECRET_FILE
EOF

size=64M

# reference DOM N: the raw disk of DOM after its first N writes.
reference() {
    python3 - "$VK_SCRATCH/$1.writes" "$2" "$VK_SCRATCH/$1-point-$3.raw" "$size" <<'PY'
import sys
def num(s):
    m = {'k': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
    return int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s)
lines = [l for l in open(sys.argv[1]).read().split('\n') if l.strip()][:int(sys.argv[2])]
with open(sys.argv[3], 'wb') as f:
    f.truncate(num(sys.argv[4]))
    for l in lines:
        pat, off, ln = l.split()
        f.seek(num(off))
        f.write(bytes([int(pat, 16)]) * num(ln))
PY
}

write() { # DOM PATTERN OFFSET LEN
    vk_domain_write "$1" vda "$2" "$3" "$4"
    echo "$2 $3 $4" >>"$VK_SCRATCH/$1.writes"
}

# chain DOM TARGET: writes and full -> inc -> diff backups of DOM to TARGET;
# the ids go into $VK_SCRATCH/DOM.ids, the references into DOM-point-N.raw.
chain() {
    local dom=$1 target=$2 n=0 level
    : >"$VK_SCRATCH/$dom.writes"
    : >"$VK_SCRATCH/$dom.ids"
    vk_domain_create "$dom" "$size" 1
    vk_domain_start "$dom"
    write "$dom" 0x11 0 5M
    write "$dom" 0x12 40M 3M
    for level in full inc diff; do
        if [ "$level" != full ]; then
            write "$dom" "0x$((n + 2))1" 4M 2M # the same region every time
            write "$dom" "0x$((n + 2))2" "$((10 + 8 * n))M" 1M
            sleep 1 # backup ids have a resolution of one second
        fi
        vk_backup 0 "$dom" --level "$level" --target "$target"
        vk_expect_eq "$(vk_bk .level)" "$level" "level of the $level backup of $dom"
        vk_expect_eq "$(vk_bk .target)" "$target" "target of the $level backup of $dom"
        vk_bk .backup >>"$VK_SCRATCH/$dom.ids"
        n=$((n + 1))
        reference "$dom" "$(wc -l <"$VK_SCRATCH/$dom.writes")" "$n"
    done
}

# restore_check DOM FROM: restore every point of DOM with --from FROM and
# compare it with its reference.
restore_check() {
    local dom=$1 from=$2 n=0 id dest
    while read -r id; do
        n=$((n + 1))
        dest=$VK_SCRATCH/restore-$dom-$from-$n
        vk_vk restore "$dom" --backup "$id" --from "$from" --dest "$dest" --json \
            >"$dest.json" 2>"$dest.err" || {
            cat "$dest.err" >&2
            vk_fail "restore of $id from '$from' failed"
        }
        qemu-img compare -q -f qcow2 -F raw "$dest/vda.qcow2" "$VK_SCRATCH/$dom-point-$n.raw" ||
            vk_fail "restore of $id from '$from' differs from its reference"
        vk_expect_eq "$(jq -r '.chain | length' "$dest.json")" "$((n == 3 ? 2 : n))" \
            "chain length of $id"
    done <"$VK_SCRATCH/$dom.ids"
    vk_log "$dom: 3 points restored from '$from' identical to their references"
}

# verify_ok WHAT FROM: verify passes with every item checked on FROM.
verify_ok() {
    local out=$VK_SCRATCH/verify-$1-$2.json
    vk_vk verify "$1" --from "$2" --json >"$out" 2>"$out.err" || {
        cat "$out.err" >&2
        vk_fail "verify $1 --from $2 failed"
    }
    vk_expect_eq "$(jq -r .failed "$out")" 0 "failed items of verify $1 --from $2"
    vk_expect_eq "$(jq -r '.items | length' "$out")" 6 "items of verify $1 --from $2"
}

dom_ssh=vk-rssh-$$-$RANDOM
dom_s3=vk-rs3-$$-$RANDOM

# SSH: the objects land in the sshd's directory, exactly as the JSON says.
VK_BK_TARGET_DIR=$sshdir
chain "$dom_ssh" offsite
vk_bk_check_committed "$dom_ssh" diff "$(head -1 "$VK_SCRATCH/$dom_ssh.ids")"
[ -z "$(find "$sshdir" -name '*.vk-tmp-*')" ] || vk_fail "temporary objects left on the sshd"
restore_check "$dom_ssh" offsite
verify_ok "$dom_ssh" offsite

# S3: the objects are in the bucket under the prefix (s3rver's files).
chain "$dom_s3" cloud
while read -r id; do
    for obj in vda.tar manifest.json; do
        f=$VK_S3_DIR/data/$VK_S3_BUCKET/vk/$dom_s3/$id/$obj._S3rver_object
        [ -f "$f" ] || vk_fail "no object '$obj' of $id in the bucket ($f)"
    done
    sum=$(sha256sum "$VK_S3_DIR/data/$VK_S3_BUCKET/vk/$dom_s3/$id/vda.tar._S3rver_object")
    vk_list "$dom_s3"
    vk_expect_eq "$(jq -r --arg id "$id" '.backups[] | select(.id == $id) | .locations[] |
        select(.disk == "vda") | .sha256' "$VK_SCRATCH/list.json")" "${sum%% *}" \
        "sha256 of the archive of $id in the bucket"
done <"$VK_SCRATCH/$dom_s3.ids"
restore_check "$dom_s3" cloud
verify_ok "$dom_s3" cloud
# Without --from the restore reads the recorded (only) copy: the same image.
vk_vk restore "$dom_s3" --dest "$VK_SCRATCH/latest-s3" >/dev/null || vk_fail "restore failed"
qemu-img compare -q -f qcow2 -F raw "$VK_SCRATCH/latest-s3/vda.qcow2" \
    "$VK_SCRATCH/$dom_s3-point-3.raw" || vk_fail "the latest restore from S3 differs"

# The backup on S3, a copy on SSH, the restore from each: byte-identical.
vk_vk copy "$dom_s3" --to offsite --json >"$VK_SCRATCH/copy.json" 2>"$VK_SCRATCH/copy.err" || {
    cat "$VK_SCRATCH/copy.err" >&2
    vk_fail "copy of $dom_s3 from S3 to SSH failed"
}
vk_expect_eq "$(jq -r .objects_copied "$VK_SCRATCH/copy.json")" 6 "objects copied to SSH"
vk_expect_eq "$(jq -r '[.items[].source] | unique | join(",")' "$VK_SCRATCH/copy.json")" cloud \
    "source of the copies"
while read -r id; do
    cmp "$VK_S3_DIR/data/$VK_S3_BUCKET/vk/$dom_s3/$id/vda.tar._S3rver_object" \
        "$sshdir/$dom_s3/$id/vda.tar" || vk_fail "the SSH copy of $id differs from the S3 one"
done <"$VK_SCRATCH/$dom_s3.ids"
restore_check "$dom_s3" offsite
verify_ok "$dom_s3" offsite
for n in 1 2 3; do
    qemu-img compare -q -f qcow2 "$VK_SCRATCH/restore-$dom_s3-cloud-$n/vda.qcow2" \
        "$VK_SCRATCH/restore-$dom_s3-offsite-$n/vda.qcow2" ||
        vk_fail "point $n restored from S3 and from SSH differ"
done

# radosgw: the same chain; the archives in the bucket (read back with
# signed GETs) are what the catalog recorded.
vk_start_rgw vk-remote
cat >>"$VK_BK_CONFIG" <<EOF

[target rgw]
url = s3://$VK_S3_BUCKET/vk?endpoint=$VK_S3_ENDPOINT&region=$VK_S3_REGION
access_key_id = $VK_S3_ACCESS_KEY
secret_key_file = $VK_S3_SECRET_FILE
EOF
dom_rgw=vk-rrgw-$$-$RANDOM
chain "$dom_rgw" rgw
vk_list "$dom_rgw"
while read -r id; do
    vk_rgw_get "vk/$dom_rgw/$id/manifest.json" "$VK_SCRATCH/rgw-manifest.json"
    vk_rgw_get "vk/$dom_rgw/$id/vda.tar" "$VK_SCRATCH/rgw-vda.tar"
    sum=$(sha256sum "$VK_SCRATCH/rgw-vda.tar")
    vk_expect_eq "$(jq -r --arg id "$id" '.backups[] | select(.id == $id) | .locations[] |
        select(.disk == "vda") | .sha256' "$VK_SCRATCH/list.json")" "${sum%% *}" \
        "sha256 of the archive of $id on radosgw"
done <"$VK_SCRATCH/$dom_rgw.ids"
restore_check "$dom_rgw" rgw
verify_ok "$dom_rgw" rgw
vk_log "PASS"
