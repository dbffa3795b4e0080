#!/bin/bash
# End-to-end test of `virtkeep restore --define --start --name` against real
# libvirtd/QEMU: a domain with a NIC (fixed MAC) and a VNC display on a fixed
# port, backed up (full + inc), is restored as a clone that runs beside the
# original: no UUID, MAC or port collision, its disk is the restored image,
# whose content equals the backup (a model of the writes) and whose qcow2
# cluster size is the source image's (128 KiB here).  Defining over an
# existing domain without --force is refused before anything is written.
# SIGINT during a restore leaves no temporary image and no qemu-nbd, and
# the exit status is 130.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img qemu-nbd pgrep

dom=vk-rdef-$$-$RANDOM
clone=$dom-clone
size=64M
vk_domain_create "$dom" "$size" 1
vk_on_exit "vk_domain_remove '$clone'"

# A 128 KiB cluster source image, a NIC with a fixed MAC and a fixed VNC port.
img=$(vk_domain_image "$dom" vda)
qemu-img create -q -f qcow2 -o cluster_size=128k "$img" "$size"
vk_free_port
vnc=$((VK_PORT > 5900 && VK_PORT < 65000 ? VK_PORT : 5977))
"${VK_VIRSH[@]}" dumpxml --inactive "$dom" >"$VK_SCRATCH/dom.xml"
python3 - "$VK_SCRATCH/dom.xml" "$vnc" <<'PY'
import sys
p, port = sys.argv[1], sys.argv[2]
x = open(p).read()
x = x.replace("</devices>",
              "<interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/>"
              "</interface><graphics type='vnc' port='%s' autoport='no' listen='127.0.0.1'/>"
              "</devices>" % port)
open(p, "w").write(x)
PY
"${VK_VIRSH[@]}" define "$VK_SCRATCH/dom.xml" >/dev/null
vk_domain_start "$dom"

: >"$VK_SCRATCH/writes"
write() {
    vk_domain_write "$dom" vda "$1" "$2" "$3"
    echo "$1 $2 $3" >>"$VK_SCRATCH/writes"
}
write 0x5a 0 4M
write 0x6b 20M 2M
vk_backup 0 "$dom" --level full
write 0x77 30M 1M
write 0x78 1M 64k
sleep 1 # backup ids have a resolution of one second
vk_backup 0 "$dom" --level inc
inc=$(vk_bk .backup)
python3 - "$VK_SCRATCH/writes" "$VK_SCRATCH/ref.raw" "$size" <<'PY'
import sys
def num(s):
    m = {'k': 1 << 10, 'M': 1 << 20}
    return int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s)
with open(sys.argv[2], 'wb') as f:
    f.truncate(num(sys.argv[3]))
    for l in open(sys.argv[1]).read().split('\n'):
        if l.strip():
            pat, off, ln = l.split()
            f.seek(num(off))
            f.write(bytes([int(pat, 16)]) * num(ln))
PY

# --- the clone runs beside the original ------------------------------------
dest=$VK_SCRATCH/clone
vk_vk restore "$dom" --dest "$dest" --define --start --name "$clone" --json \
    >"$VK_SCRATCH/clone.json" 2>"$VK_SCRATCH/clone.err" || {
    cat "$VK_SCRATCH/clone.err" >&2
    vk_fail "restore --define --start --name failed"
}
j=$VK_SCRATCH/clone.json
vk_expect_eq "$(jq -r .defined "$j")" "$clone" "defined domain"
vk_expect_eq "$(jq -r .started "$j")" true "started"
vk_expect_eq "$(jq -r '.chain[-1]' "$j")" "$inc" "restored backup"
vk_expect_eq "$(jq -r '.disks[0].cluster_size' "$j")" 131072 "cluster size in the JSON"
for d in "$dom" "$clone"; do
    vk_expect_eq "$("${VK_VIRSH[@]}" domstate "$d" | sed '/^$/d')" running "state of $d"
done
u1=$("${VK_VIRSH[@]}" domuuid "$dom" | sed '/^$/d')
u2=$("${VK_VIRSH[@]}" domuuid "$clone" | sed '/^$/d')
[ -n "$u2" ] && [ "$u1" != "$u2" ] || vk_fail "the clone has the UUID of the original ($u1)"
m1=$("${VK_VIRSH[@]}" domiflist "$dom" | awk '{print $5}' | sed '/^$/d')
m2=$("${VK_VIRSH[@]}" domiflist "$clone" | awk '{print $5}' | sed '/^$/d')
vk_expect_eq "$m1" 52:54:00:12:34:56 "MAC of the original"
[ -n "$m2" ] && [ "$m1" != "$m2" ] || vk_fail "the clone has the MAC of the original ($m2)"
v2=$("${VK_VIRSH[@]}" vncdisplay "$clone" | sed '/^$/d')
vk_expect_eq "$("${VK_VIRSH[@]}" vncdisplay "$dom" | sed '/^$/d')" "127.0.0.1:$((vnc - 5900))" \
    "VNC display of the original"
[ "$v2" != "127.0.0.1:$((vnc - 5900))" ] || vk_fail "the clone took the original's VNC port"
src=$("${VK_VIRSH[@]}" domblklist "$clone" | awk '$1 == "vda" {print $2}')
vk_expect_eq "$src" "$dest/vda.qcow2" "disk source of the clone"
vk_expect_eq "$(qemu-img info -U --output=json "$dest/vda.qcow2" | jq -r '.["cluster-size"]')" \
    131072 "cluster size of the restored image"
qemu-img compare -U -q -f qcow2 -F raw "$dest/vda.qcow2" "$VK_SCRATCH/ref.raw" ||
    vk_fail "the clone's disk differs from the backup"
"${VK_VIRSH[@]}" dumpxml --inactive "$clone" | grep -q '<domain' ||
    vk_fail "the clone is not persistent"
vk_log "clone '$clone' runs beside '$dom' with its own UUID, MAC and VNC port"

# --- refusals --------------------------------------------------------------
for args in "--name $clone" ""; do
    rc=0
    # shellcheck disable=SC2086
    vk_vk restore "$dom" --dest "$VK_SCRATCH/again" --define $args \
        2>"$VK_SCRATCH/refuse.err" >/dev/null || rc=$?
    vk_expect_eq "$rc" 2 "exit status of a define over an existing domain ($args)"
    vk_expect_grep "$VK_SCRATCH/refuse.err" "already defined.*--force" "refusal message"
    [ -z "$(ls -A "$VK_SCRATCH/again" 2>/dev/null)" ] ||
        vk_fail "a refused define left files in the destination"
done
rc=0
vk_vk restore "$dom" --dest "$VK_SCRATCH/again" --define --name "$clone" --force \
    2>"$VK_SCRATCH/refuse.err" >/dev/null || rc=$?
vk_expect_eq "$rc" 2 "exit status of --force over a running domain"
vk_expect_grep "$VK_SCRATCH/refuse.err" "is running.*shut it down" "refusal of a running domain"

# --- SIGINT during a restore -----------------------------------------------
# qemu-nbd is started through a wrapper that marks the moment and waits: the
# signal arrives while the temporary image exists and the server starts.
mark=$VK_SCRATCH/nbd-started
cat >"$VK_SCRATCH/qemu-nbd-slow" <<EOF
#!/bin/sh
touch '$mark'
sleep 5
exec qemu-nbd "\$@"
EOF
chmod +x "$VK_SCRATCH/qemu-nbd-slow"
idest=$VK_SCRATCH/interrupted
# virtkeep itself, not a subshell, gets the signal (it installs its handler
# even though a background job starts with SIGINT ignored).
VIRTKEEP_QEMU_NBD=$VK_SCRATCH/qemu-nbd-slow "$VK_BIN" --config "$VK_BK_CONFIG" \
    --catalog "$VK_BK_CATALOG" restore "$dom" --dest "$idest" 2>"$VK_SCRATCH/int.err" >/dev/null &
pid=$!
vk_wait_for 20 test -e "$mark" || vk_fail "the restore did not start qemu-nbd"
ls -A "$idest" | grep -q 'vk-tmp' || vk_fail "no temporary image while qemu-nbd starts"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
vk_expect_eq "$rc" 130 "exit status of an interrupted restore"
vk_expect_grep "$VK_SCRATCH/int.err" "interrupted" "message of an interrupted restore"
[ -z "$(ls -A "$idest")" ] || vk_fail "an interrupted restore left files: $(ls -A "$idest")"
if pgrep -f "qemu-nbd.*$idest" >/dev/null || pgrep -f "qemu-nbd-slow" >/dev/null; then
    vk_fail "an interrupted restore left qemu-nbd running"
fi
vk_log "PASS"
