#!/bin/bash
# End-to-end: a domain whose name begins with '.' (libvirt allows it).
# Its backups are stored under encoded key components (docs/FORMAT.md,
# "Object keys": '.hidden-vm' -> '%2Ehidden-vm'), never as hidden or '..'
# entries, and nothing lands outside the target directory.  Full backup,
# list, show, verify, an incremental, restore of both points (compared
# with the live disk and with the data written), and a catalog rebuilt
# from the target alone.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
dom=.hidden-vm
enc=%2Ehidden-vm
"${VK_VIRSH[@]}" dominfo "$dom" >/dev/null 2>&1 && vk_domain_remove "$dom"
vk_domain_create "$dom" 256M 1
vk_domain_start "$dom"

vk_domain_write "$dom" vda 0xcd 64M 1M
vk_backup 0 "$dom" --level full
full=$(vk_bk .backup)
vk_expect_eq "$(vk_bk .status)" committed "status of the full"
vk_expect_eq "$(vk_bk .domain)" "$dom" "domain of the full"
case $full in
"$dom"-*) ;;
*) vk_fail "backup id '$full' does not start with the domain name" ;;
esac
# The keys: every component encoded, no hidden entry on the target.
key=$(vk_bk '.disks[0].key')
vk_expect_eq "$key" "$enc/%2E${full#.}/vda.tar" "key of the full's archive"
vk_expect_eq "$(vk_bk .manifest_key)" "$enc/%2E${full#.}/manifest.json" "manifest key"
[ -f "$VK_BK_TARGET/$key" ] || vk_fail "no archive '$key' on the target"
hidden=$(cd "$VK_BK_TARGET" && find . -mindepth 1 -name '.*' -print)
[ -z "$hidden" ] || vk_fail "hidden entries on the target: $hidden"
vk_archive_check "$VK_BK_TARGET/$key" "$((64 * M)):$M:0xcd"

vk_list "$dom"
vk_expect_eq "$(vk_list_get "$full" status)" committed "listed status of the full"
vk_vk show "$full" --json >"$VK_SCRATCH/show.json" || vk_fail "show $full failed"
vk_expect_eq "$(jq -r .domain "$VK_SCRATCH/show.json")" "$dom" "domain shown"
vk_vk verify "$dom" >"$VK_SCRATCH/verify.out" 2>&1 || {
    cat "$VK_SCRATCH/verify.out" >&2
    vk_fail "verify $dom failed"
}

sleep 1 # backup ids have a resolution of one second
vk_domain_write "$dom" vda 0xab 128M 1M
vk_backup 0 "$dom" --level inc
vk_bk_check_committed_enc() {
    local id=$1
    vk_expect_eq "$(vk_bk .parent)" "$full" "parent of $id"
    [ -f "$VK_BK_TARGET/$enc/%2E${id#.}/manifest.json" ] || vk_fail "no manifest of $id"
}
inc=$(vk_bk .backup)
vk_bk_check_committed_enc "$inc"
vk_archive_check "$VK_BK_TARGET/$(vk_bk '.disks[0].key')" "$((128 * M)):$M:0xab"

# Restore both points and compare.
vk_domain_flush "$dom" vda
for id in "$full" "$inc"; do
    dest=$VK_SCRATCH/restore-${id#.}
    vk_vk restore "$dom" --backup "$id" --dest "$dest" >"$VK_SCRATCH/restore.out" 2>&1 || {
        cat "$VK_SCRATCH/restore.out" >&2
        vk_fail "restore of $id failed"
    }
    img=$(find "$dest" -name '*.qcow2' | head -1)
    [ -n "$img" ] || vk_fail "the restore of $id left no image in $dest: $(ls -A "$dest")"
    case $(realpath "$img") in
    "$(realpath "$dest")"/*) ;;
    *) vk_fail "the restore of $id wrote outside $dest: $img" ;;
    esac
    ref=$VK_SCRATCH/ref.raw
    python3 - "$ref" "$id" "$inc" <<'PY'
import sys
M = 1 << 20
with open(sys.argv[1], 'wb') as f:
    f.truncate(256 * M)
    f.seek(64 * M)
    f.write(b'\xcd' * M)
    if sys.argv[2] == sys.argv[3]:
        f.seek(128 * M)
        f.write(b'\xab' * M)
PY
    qemu-img compare -q -f qcow2 -F raw "$img" "$ref" || vk_fail "the restore of $id differs"
    vk_log "restored $id identical"
done
qemu-img compare -q -U "$dest/$(basename "$img")" "$(vk_domain_image "$dom" vda)" ||
    vk_fail "the latest restore differs from the live disk"

# The catalog rebuilt from the target alone knows the domain by its name.
VK_BK_CATALOG=$VK_SCRATCH/rebuilt.db
vk_vk catalog rebuild --target main >"$VK_SCRATCH/rebuild.out" 2>&1 || {
    cat "$VK_SCRATCH/rebuild.out" >&2
    vk_fail "catalog rebuild failed"
}
vk_list "$dom"
vk_expect_eq "$(vk_list_ids committed | tr '\n' ' ')" "$(printf '%s\n' "$full" "$inc" | sort | tr '\n' ' ')" \
    "backups of $dom in the rebuilt catalog"
vk_log "PASS: '$dom' backed up under '$enc/', listed, verified, restored and rebuilt"
