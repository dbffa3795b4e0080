#!/bin/bash
# An independent reader of the sealed format: tests/lib/unseal.py, written
# from docs/FORMAT.md alone with Python's `cryptography` (Debian
# python3-cryptography) and the zstd command, authenticates the manifest of
# a sealed inc, decrypts the archives of its chain (full, then inc) and
# rebuilds the disk.  The result must equal, byte for byte, the reference
# disk and virtkeep's own restore.  A flipped byte in a frame, or the wrong
# key, makes unseal.py fail too.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img zstd cmp
python3 -c 'import cryptography.hazmat.primitives.keywrap' 2>/dev/null ||
    vk_skip "python3-cryptography is not installed"
unseal=$abs_top_srcdir/tests/lib/unseal.py
keyring=$VK_SCRATCH/keyring
target=$VK_SCRATCH/sealed
mkdir -p "$target"
"$VK_BIN" key create --keyring "$keyring" >/dev/null || vk_fail "virtkeep key create failed"
printf '\n[target sealed]\nurl = file://%s\nencryption = aes-256-gcm\nencryption_key_file = %s\n' \
    "$target" "$keyring" >>"$VK_BK_CONFIG"

dom=vk-sealpy-$$-$RANDOM
size=48M
ref=$VK_SCRATCH/reference.raw
head -c 9M /dev/urandom >"$ref"
truncate -s "$size" "$ref"
vk_domain_create "$dom" "$size" 1
qemu-img convert -n -f raw -O qcow2 "$ref" "$(vk_domain_image "$dom" vda)"
vk_domain_start "$dom"
vk_backup 0 "$dom" --level full --target sealed
full=$(vk_bk .backup)
sleep 1
vk_domain_write "$dom" vda 0x5a 30M 5M
vk_domain_write "$dom" vda 0x00 1M 1M
python3 - "$ref" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(30 << 20); f.write(b"\x5a" * (5 << 20))
    f.seek(1 << 20); f.write(b"\0" * (1 << 20))
PY
vk_backup 0 "$dom" --level inc --target sealed
inc=$(vk_bk .backup)

python3 "$unseal" "$keyring" "$target/$dom/$inc/manifest.json" "$VK_SCRATCH/python.raw" \
    "$target/$dom/$full/vda.tar" "$target/$dom/$inc/vda.tar" >"$VK_SCRATCH/unseal.out" \
    2>"$VK_SCRATCH/unseal.err" || {
    cat "$VK_SCRATCH/unseal.err" >&2
    vk_fail "unseal.py cannot read the sealed chain"
}
cmp "$VK_SCRATCH/python.raw" "$ref" || vk_fail "the Python restore differs from the reference"
vk_vk restore "$dom" --backup "$inc" --dest "$VK_SCRATCH/restored" >/dev/null ||
    vk_fail "virtkeep restore failed"
qemu-img convert -f qcow2 -O raw "$VK_SCRATCH/restored/vda.qcow2" "$VK_SCRATCH/virtkeep.raw"
cmp "$VK_SCRATCH/python.raw" "$VK_SCRATCH/virtkeep.raw" ||
    vk_fail "the Python restore differs from virtkeep's"
vk_log "unseal.py (Python cryptography, FORMAT.md only) rebuilt the disk byte for byte"

# The independent reader can fail: a flipped byte in a frame, another key.
cp "$target/$dom/$inc/vda.tar" "$VK_SCRATCH/flipped.tar"
printf '\x01' | dd of="$VK_SCRATCH/flipped.tar" bs=1 seek=1600 conv=notrunc status=none
if python3 "$unseal" "$keyring" "$target/$dom/$inc/manifest.json" "$VK_SCRATCH/x.raw" \
    "$target/$dom/$full/vda.tar" "$VK_SCRATCH/flipped.tar" 2>/dev/null; then
    vk_fail "unseal.py accepted a flipped byte"
fi
sed 's/"started": /"started":  /' "$target/$dom/$inc/manifest.json" >"$VK_SCRATCH/m.json"
if python3 "$unseal" "$keyring" "$VK_SCRATCH/m.json" "$VK_SCRATCH/x.raw" \
    "$target/$dom/$full/vda.tar" "$target/$dom/$inc/vda.tar" 2>/dev/null; then
    vk_fail "unseal.py accepted an altered manifest"
fi
vk_log "unseal.py refuses a flipped frame byte and an altered manifest"
