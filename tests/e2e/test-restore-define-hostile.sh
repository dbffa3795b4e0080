#!/bin/bash
# End-to-end: `virtkeep restore --define` does not trust the domain XML saved
# with a backup.  A real backup's manifest is forged on the file:// target
# (a <filesystem> passthrough of the host's /, a PCI <hostdev> and a serial
# port writing to a host file are added to domain.xml), the catalog is
# rebuilt from that target (what disaster recovery does), and restore
# --define defines the domain without them: `virsh dumpxml` has none, stderr
# names each, and --json lists them in dropped_devices.  With
# --keep-host-devices the filesystem is defined as saved (the forged XML then
# holds only the filesystem: a hostdev that does not exist cannot be
# defined).
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img find

dom=vk-rhost-$$-$RANDOM
vk_domain_create "$dom" 64M 1
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0x5a 0 1M
vk_backup 0 "$dom" --level full
id=$(vk_bk .backup)
manifest=$(find "$VK_BK_TARGET" -path "*/$id/manifest.json")
[ -f "$manifest" ] || vk_fail "no manifest for backup $id on the target"
cp "$manifest" "$VK_SCRATCH/manifest.orig"

# forge WHAT...: the saved domain XML with these devices added, and a
# catalog rebuilt from the target.
forge() {
    python3 - "$VK_SCRATCH/manifest.orig" "$manifest" "$VK_SCRATCH/serial.log" "$@" <<'PY'
import json, sys
src, dst, log, what = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
dev = {
    "filesystem": "<filesystem type='mount' accessmode='passthrough'><source dir='/'/>"
                  "<target dir='host'/></filesystem>",
    "hostdev": "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
               "<address domain='0x0000' bus='0x3a' slot='0x1f' function='0x7'/></source>"
               "</hostdev>",
    "serial": "<serial type='file'><source path='%s'/><target port='3'/></serial>" % log,
}
m = json.load(open(src))
x = m["domain"]["xml"]
assert "</devices>" in x
m["domain"]["xml"] = x.replace("</devices>", "".join(dev[w] for w in what) + "</devices>")
json.dump(m, open(dst, "w"))
PY
    rm -f "$VK_BK_CATALOG" "$VK_BK_CATALOG-wal" "$VK_BK_CATALOG-shm"
    vk_vk catalog rebuild --target main --json >"$VK_SCRATCH/rebuild.json" \
        2>"$VK_SCRATCH/rebuild.err" || {
        cat "$VK_SCRATCH/rebuild.err" >&2
        vk_fail "catalog rebuild from the forged target failed"
    }
    vk_expect_eq "$(jq -r .added "$VK_SCRATCH/rebuild.json")" 1 "backups rebuilt"
    vk_vk show "$id" --json | grep -q "target dir=.*host" ||
        vk_fail "the rebuilt catalog does not hold the forged domain XML"
}

# --- the forged devices are left out ---------------------------------------
forge filesystem hostdev serial
r1=$dom-r1
vk_on_exit "vk_domain_remove '$r1'"
vk_vk restore "$dom" --dest "$VK_SCRATCH/r1" --define --name "$r1" --json \
    >"$VK_SCRATCH/r1.json" 2>"$VK_SCRATCH/r1.err" || {
    cat "$VK_SCRATCH/r1.err" >&2
    vk_fail "restore --define of the forged backup failed"
}
"${VK_VIRSH[@]}" dumpxml --inactive "$r1" >"$VK_SCRATCH/r1.xml" ||
    vk_fail "domain '$r1' was not defined"
for bad in '<filesystem' '<hostdev' "$VK_SCRATCH/serial.log"; do
    if grep -q -- "$bad" "$VK_SCRATCH/r1.xml"; then
        cat "$VK_SCRATCH/r1.xml" >&2
        vk_fail "the defined domain has the forged '$bad'"
    fi
done
grep -q "<source file='$VK_SCRATCH/r1/vda.qcow2'/>" "$VK_SCRATCH/r1.xml" ||
    vk_fail "the defined domain's disk is not the restored image"
vk_expect_grep "$VK_SCRATCH/r1.err" \
    "<filesystem type='mount'> source '/' target 'host' reaches the host: left out" \
    "stderr names the filesystem"
vk_expect_grep "$VK_SCRATCH/r1.err" "<hostdev type='pci'> reaches the host" \
    "stderr names the hostdev"
vk_expect_grep "$VK_SCRATCH/r1.err" "<serial type='file'> source '$VK_SCRATCH/serial.log'" \
    "stderr names the serial port"
vk_expect_eq "$(grep -c 'reaches the host' "$VK_SCRATCH/r1.err")" 3 "stderr lines"
vk_expect_eq "$(jq -r '.dropped_devices | length' "$VK_SCRATCH/r1.json")" 3 \
    "dropped_devices in the JSON"
jq -e '.dropped_devices[] | select(startswith("<filesystem"))' "$VK_SCRATCH/r1.json" \
    >/dev/null || vk_fail "dropped_devices does not list the filesystem"
vk_expect_eq "$(jq -r .defined "$VK_SCRATCH/r1.json")" "$r1" "defined domain"
vk_log "forged filesystem, hostdev and serial port left out of '$r1' and named"

# --- --keep-host-devices keeps them ----------------------------------------
forge filesystem
r2=$dom-r2
vk_on_exit "vk_domain_remove '$r2'"
vk_vk restore "$dom" --dest "$VK_SCRATCH/r2" --define --name "$r2" --keep-host-devices \
    --json >"$VK_SCRATCH/r2.json" 2>"$VK_SCRATCH/r2.err" || {
    cat "$VK_SCRATCH/r2.err" >&2
    vk_fail "restore --define --keep-host-devices failed"
}
"${VK_VIRSH[@]}" dumpxml --inactive "$r2" >"$VK_SCRATCH/r2.xml" ||
    vk_fail "domain '$r2' was not defined"
grep -q "<source dir='/'/>" "$VK_SCRATCH/r2.xml" || {
    cat "$VK_SCRATCH/r2.xml" >&2
    vk_fail "--keep-host-devices did not keep the filesystem"
}
if grep -q 'reaches the host' "$VK_SCRATCH/r2.err"; then
    vk_fail "--keep-host-devices still reported devices as left out"
fi
vk_expect_eq "$(jq -r '.dropped_devices | length' "$VK_SCRATCH/r2.json")" 0 \
    "dropped_devices with --keep-host-devices"
rc=0
vk_vk restore "$dom" --dest "$VK_SCRATCH/r3" --keep-host-devices >/dev/null \
    2>"$VK_SCRATCH/r3.err" || rc=$?
vk_expect_eq "$rc" 2 "exit status of --keep-host-devices without --define"
vk_log "PASS: restore --define leaves forged host devices out, --keep-host-devices keeps them"
