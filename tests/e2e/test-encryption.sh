#!/bin/bash
# Sealed backups (encryption = aes-256-gcm) end to end, on a file target,
# then on an SSH target (the harness sshd) and an S3 target (s3rver):
#   - a full and an inc restore byte-identical to their references;
#   - a plaintext marker written into the guest disk is found in a plain
#     backup of the same disk (the control) and nowhere on a sealed target,
#     nor is the key;
#   - a flipped byte in an archive frame, in the sealed index or in a
#     manifest is refused, naming the object;
#   - without the key, or with another one, the restore fails at once naming
#     the key id and writes no image;
#   - key rotate: the backups sealed before and after all restore; the old
#     backups report that they need the retired key; without it they fail
#     naming it.
# VK_ENC_TARGETS (default "file ssh s3") picks the targets.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img grep
targets=${VK_ENC_TARGETS:-file ssh s3}
size=32M
MARKER=VKSEALED-PLAINTEXT-MARKER-7d1e

keyring=$VK_SCRATCH/keyring
"$VK_BIN" key create --keyring "$keyring" --json >"$VK_SCRATCH/key.json" ||
    vk_fail "virtkeep key create failed"
key_id=$(jq -r .id "$VK_SCRATCH/key.json")
[ "$(stat -c %a "$keyring")" = 600 ] || vk_fail "the keyring is not mode 0600"
key_hex=$(awk '$1 == "'"$key_id"'" {print $2}' "$keyring")
[ ${#key_hex} = 64 ] || vk_fail "the keyring has no 64-digit key $key_id"

# objdir KIND: where the objects of a target of KIND land on this host.
# objfile KIND KEY: the file that holds object KEY.
objfile() {
    case $1 in
    s3) echo "$VK_S3_DIR/data/$VK_S3_BUCKET/vk/$2._S3rver_object" ;;
    *) echo "$(objdir "$1")/$2" ;;
    esac
}
objdir() {
    case $1 in
    file) echo "$VK_SCRATCH/sealed-file" ;;
    ssh) echo "$VK_SCRATCH/sealed-ssh" ;;
    s3) echo "$VK_S3_DIR/data/$VK_S3_BUCKET/vk" ;;
    esac
}

add_targets() {
    printf '\n[target plain]\nurl = file://%s\n' "$VK_SCRATCH/plain" >>"$VK_BK_CONFIG"
    mkdir -p "$VK_SCRATCH/plain"
    for kind in $targets; do
        case $kind in
        file)
            mkdir -p "$(objdir file)"
            printf '\n[target sealed-file]\nurl = file://%s\n' "$(objdir file)"
            ;;
        ssh)
            vk_start_sshd
            mkdir -p "$(objdir ssh)"
            printf '\n[target sealed-ssh]\nurl = ssh://%s@%s:%s%s\nkey_file = %s\n' \
                "$VK_SSH_USER" "$VK_SSH_HOST" "$VK_SSH_PORT" "$(objdir ssh)" "$VK_SSH_KEY"
            printf 'known_hosts = %s\n' "$VK_SSH_KNOWN_HOSTS"
            ;;
        s3)
            vk_start_s3rver vk-sealed
            printf '\n[target sealed-s3]\nurl = s3://%s/vk?endpoint=%s&region=%s\n' \
                "$VK_S3_BUCKET" "$VK_S3_ENDPOINT" "$VK_S3_REGION"
            printf 'access_key_id = %s\nsecret_key_file = %s\n' "$VK_S3_ACCESS_KEY" \
                "$VK_S3_SECRET_FILE"
            ;;
        esac >>"$VK_BK_CONFIG"
        printf 'encryption = aes-256-gcm\nencryption_key_file = %s\n' "$keyring" >>"$VK_BK_CONFIG"
    done
}
add_targets

# The first 8 MiB of the disk: random bytes with the marker every 64 KiB
# (incompressible, so that a plain archive holds the marker verbatim).
python3 - "$VK_SCRATCH/seed.raw" "$MARKER" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(128):
        f.write(sys.argv[2].encode() + os.urandom(65536 - len(sys.argv[2])))
PY

# restore_ok DOM ID REF: restore backup ID and compare it with REF (raw).
restore_ok() {
    local dest=$VK_SCRATCH/restore-$2
    vk_vk restore "$1" --backup "$2" --dest "$dest" --force --json >"$dest.json" \
        2>"$dest.err" || {
        cat "$dest.err" >&2
        vk_fail "restore of sealed backup $2 failed"
    }
    qemu-img compare -q -f qcow2 -F raw "$dest/vda.qcow2" "$3" ||
        vk_fail "restore of sealed backup $2 differs from its reference"
}

# restore_refused DOM ID ERE WHAT: the restore fails, stderr matches ERE, and
# no image was written.
restore_refused() {
    local dest=$VK_SCRATCH/refused-$RANDOM
    if vk_vk restore "$1" --backup "$2" --dest "$dest" >"$dest.out" 2>"$dest.err"; then
        vk_fail "$4: the restore of $2 succeeded"
    fi
    vk_expect_grep "$dest.err" "$3" "$4"
    [ -z "$(find "$dest" -name '*.qcow2*' 2>/dev/null)" ] || vk_fail "$4: an image was written"
}

# flip FILE OFFSET: flip the low bit of the byte at OFFSET of FILE.
flip() {
    python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 1]))
PY
}

suite() {
    local kind=$1 target=sealed-$1 dom full inc tar man size_tar at
    dom=vk-enc-$kind-$$-$RANDOM
    vk_domain_create "$dom" "$size" 1
    qemu-img convert -n -f raw -O qcow2 "$VK_SCRATCH/seed.raw" "$(vk_domain_image "$dom" vda)"
    vk_domain_start "$dom"
    cp "$VK_SCRATCH/seed.raw" "$VK_SCRATCH/$dom-1.raw"
    truncate -s "$size" "$VK_SCRATCH/$dom-1.raw"

    vk_backup 0 "$dom" --level full --target "$target"
    full=$(vk_bk .backup)
    sleep 1
    vk_domain_write "$dom" vda 0xcd 20M 2M
    cp "$VK_SCRATCH/$dom-1.raw" "$VK_SCRATCH/$dom-2.raw"
    python3 -c "
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(20 << 20); f.write(b'\xcd' * (2 << 20))" "$VK_SCRATCH/$dom-2.raw"
    vk_backup 0 "$dom" --level inc --target "$target"
    inc=$(vk_bk .backup)
    # The control: a plain copy backup of the same disk holds the marker.
    vk_backup 0 "$dom" --level copy --target plain
    grep -rqa "$MARKER" "$VK_SCRATCH/plain" ||
        vk_fail "the control failed: the plain backup does not hold the marker"

    restore_ok "$dom" "$full" "$VK_SCRATCH/$dom-1.raw"
    restore_ok "$dom" "$inc" "$VK_SCRATCH/$dom-2.raw"
    vk_log "$kind: sealed full and inc restored byte-identical"
    vk_vk verify "$dom" --json >"$VK_SCRATCH/verify-$kind.json" \
        2>"$VK_SCRATCH/verify-$kind.err" || {
        cat "$VK_SCRATCH/verify-$kind.err" >&2
        vk_fail "$kind: verify of the sealed chain failed"
    }
    vk_expect_eq "$(jq -r .failed "$VK_SCRATCH/verify-$kind.json")" 0 "$kind: failed verify items"

    ! grep -rqa "$MARKER" "$(objdir "$kind")" || vk_fail "$kind: the marker is on the target"
    ! grep -rqai "$key_hex" "$(objdir "$kind")" || vk_fail "$kind: the key is on the target"
    man=$(objfile "$kind" "$dom/$inc/manifest.json")
    vk_expect_eq "$(jq -r .encryption.key_id "$man")" "$key_id" "key id in the manifest"
    vk_expect_eq "$(jq -r .version "$man")" 4 "version of a sealed manifest"

    # Flipped bytes: the first frame (its data starts at 1536: header.json
    # member, then the first data member's header), the sealed index, the
    # trailer (in the 2048-byte tail), manifests.
    tar=$(objfile "$kind" "$dom/$inc/vda.tar")
    size_tar=$(stat -c %s "$tar")
    flip "$tar" 1600
    restore_refused "$dom" "$inc" "$dom/$inc/vda.tar.*(fails its authentication|sha256)" \
        "$kind: a flipped byte in a frame"
    flip "$tar" 1600
    at=$(python3 -c "
import sys, tarfile
print([m.offset_data for m in tarfile.open(sys.argv[1]) if m.name == 'index.json.sealed'][0] + 10)
" "$tar")
    flip "$tar" "$at"
    restore_refused "$dom" "$inc" "$dom/$inc/vda.tar.*index" "$kind: a flipped byte in the index"
    flip "$tar" "$at"
    flip "$tar" $((size_tar - 1536 + 100))
    restore_refused "$dom" "$inc" "$dom/$inc/vda.tar.*trailer" "$kind: a flipped byte in the trailer"
    flip "$tar" $((size_tar - 1536 + 100))
    sed -i 's/"started": /"started":  /' "$man"
    restore_refused "$dom" "$inc" "$dom/$inc/manifest.json" "$kind: an altered manifest"
    # A catalog rebuilt from the target refuses it too, naming it.
    if "$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_SCRATCH/rebuilt-$kind.db" catalog \
        rebuild --target "$target" --json >"$VK_SCRATCH/rebuild-$kind.json" \
        2>"$VK_SCRATCH/rebuild-$kind.err"; then
        vk_fail "$kind: catalog rebuild accepted an altered sealed manifest"
    fi
    vk_expect_grep "$VK_SCRATCH/rebuild-$kind.err" "$dom/$inc/manifest.json.*fails its authentication" \
        "$kind: catalog rebuild of an altered manifest"
    sed -i 's/"started":  /"started": /' "$man"
    man=$(objfile "$kind" "$dom/$full/manifest.json")
    sed -i 's/"started": /"started":  /' "$man"
    restore_refused "$dom" "$full" "$dom/$full/manifest.json" "$kind: an altered full manifest"
    sed -i 's/"started":  /"started": /' "$man"
    restore_ok "$dom" "$inc" "$VK_SCRATCH/$dom-2.raw"
    vk_log "$kind: flipped bytes in a frame, the index and manifests refused, naming the object"

    # No key, then another key: fails at once naming the key id.
    mv "$keyring" "$keyring.away"
    restore_refused "$dom" "$inc" "$key_id" "$kind: a restore without the keyring"
    "$VK_BIN" key create --keyring "$keyring" >/dev/null || vk_fail "key create failed"
    restore_refused "$dom" "$full" "(sealed|authenticated) with key '$key_id'" "$kind: a restore with another key"
    mv "$keyring.away" "$keyring"
    vk_log "$kind: without the key the restore fails naming key $key_id, writing nothing"
    echo "$dom $full $inc" >>"$VK_SCRATCH/sealed.list"
}

for kind in $targets; do
    suite "$kind"
done

# Rotation: a new full sealed with the new key; the old backups still need
# the retired key, say so, and fail naming it without it.
kind=${targets%% *}
read -r dom full inc <"$VK_SCRATCH/sealed.list"
cp "$keyring" "$VK_SCRATCH/keyring.before"
chmod 600 "$VK_SCRATCH/keyring.before"
"$VK_BIN" key rotate --keyring "$keyring" --json >"$VK_SCRATCH/rotate.json" ||
    vk_fail "key rotate failed"
new_id=$(jq -r .id "$VK_SCRATCH/rotate.json")
"$VK_BIN" key list --keyring "$keyring" --json >"$VK_SCRATCH/keys.json"
vk_expect_eq "$(jq -r --arg id "$key_id" '.[] | select(.id == $id) | .state' \
    "$VK_SCRATCH/keys.json")" retired "state of the rotated key"
vk_expect_eq "$(jq -r --arg id "$new_id" '.[] | select(.id == $id) | .state' \
    "$VK_SCRATCH/keys.json")" active "state of the new key"
sleep 1
vk_backup 0 "$dom" --level full --target "sealed-$kind"
new_full=$(vk_bk .backup)
vk_expect_eq "$(jq -r .encryption.key_id "$(objfile "$kind" "$dom/$new_full/manifest.json")")" \
    "$new_id" "key of the backup after the rotation"
restore_ok "$dom" "$new_full" "$VK_SCRATCH/$dom-2.raw"
restore_ok "$dom" "$inc" "$VK_SCRATCH/$dom-2.raw"
vk_expect_grep "$VK_SCRATCH/restore-$inc.err" "sealed with retired key '$key_id'" \
    "the old backup reports the retired key"
# Without the retired key (a keyring of the new key alone), only the new backup restores.
python3 - "$keyring" "$key_id" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines(True)
open(sys.argv[1], "w").writelines(l for l in lines if not l.startswith(sys.argv[2]))
PY
restore_refused "$dom" "$inc" "$key_id" "an old backup without its retired key"
restore_ok "$dom" "$new_full" "$VK_SCRATCH/$dom-2.raw"
# The paper backup brings the retired key back through the environment.
"$VK_BIN" key export "$key_id" --keyring "$VK_SCRATCH/keyring.before" >"$VK_SCRATCH/paper.txt" ||
    vk_fail "key export failed"
paper_hex=$(sed -n 's/^key: *//p; s/^          //p' "$VK_SCRATCH/paper.txt" | head -2 | tr -d ' \n')
vk_expect_eq "$paper_hex" "$key_hex" "the exported key"
VIRTKEEP_KEY=$paper_hex restore_ok "$dom" "$inc" "$VK_SCRATCH/$dom-2.raw"
vk_log "rotation: before and after restore; the retired key is needed and reported"
