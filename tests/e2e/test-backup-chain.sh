#!/bin/bash
# End-to-end test of `virtkeep backup`, `list` and `show` on a running
# domain (real libvirtd/QEMU): full, write, inc, write, inc, write, diff,
# then a copy.  Every archive is unpacked with plain tar + zstd (no
# virtkeep, docs/FORMAT.md) and its chunks are compared byte for byte with
# a model of the disk built from the writes; every size and sha256 the
# catalog records is compared with the files on the target.
. "$abs_top_srcdir/tests/lib/harness.sh"

vk_start_libvirtd
vk_require_cmd tar zstd sqlite3 sha256sum python3
VK=$abs_top_builddir/src/virtkeep
M=$((1 << 20))
K=1024

dom=vk-chain-$$-$RANDOM
tgt=$VK_SCRATCH/target
cat=$VK_SCRATCH/catalog.db
conf=$VK_SCRATCH/empty.conf
mkdir -p "$tgt"
: >"$conf"
vk_domain_create "$dom" 512M 1
vk_domain_start "$dom"

vk() {
    "$VK" -c "$VK_LIBVIRT_URI" --config "$conf" --catalog "$cat" "$@"
}

# The model of the disk: every write, in order ("PATTERN OFFSET LENGTH").
: >"$VK_SCRATCH/writes"
write() {
    vk_domain_write "$dom" vda "$1" "$2" "$3"
    echo "$1 $2 $3" >>"$VK_SCRATCH/writes"
}
# Writes since backup N began (line numbers of the model file).
mark() {
    wc -l <"$VK_SCRATCH/writes"
}

json_get() { # FILE EXPR  (python expression over j)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

expect_eq() {
    [ "$1" = "$2" ] || vk_fail "$3: expected '$2', got '$1'"
}

# backup NAME ARGS...: run a backup with --json into $VK_SCRATCH/NAME.json.
backup() {
    local name=$1
    shift
    vk backup "$dom" --target "file://$tgt" --json "$@" >"$VK_SCRATCH/$name.json" \
        2>"$VK_SCRATCH/$name.err" || vk_fail "backup $name failed: $(cat "$VK_SCRATCH/$name.err")"
    [ ! -s "$VK_SCRATCH/$name.err" ] || vk_fail "backup $name printed: $(cat "$VK_SCRATCH/$name.err")"
}

# check_archive NAME FROM TO: unpack the archive of backup NAME with tar and
# zstd, check each chunk against the index (sha256) and against the model
# after the first TO writes; the bytes written by writes FROM+1..TO (the
# dirty set; FROM=0 for a full) must all be covered by data chunks, and the
# data chunks must hold exactly that much.
check_archive() {
    local name=$1 from=$2 to=$3 key dir f
    key=$(json_get "$VK_SCRATCH/$name.json" 'j["disks"][0]["key"]')
    dir=$VK_SCRATCH/x-$name
    mkdir -p "$dir"
    tar -xf "$tgt/$key" -C "$dir" || vk_fail "tar cannot unpack $key"
    for f in "$dir"/data/*.zst; do
        [ -e "$f" ] || continue
        zstd -q -d "$f" -o "${f%.zst}.raw" || vk_fail "zstd cannot decompress $f"
    done
    python3 - "$dir" "$VK_SCRATCH/writes" "$from" "$to" "$name" <<'EOF' || vk_fail "archive of $name"
import hashlib, json, os, sys
d, writes, frm, to, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def num(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)
ws = [(int(p, 16), num(o), num(l)) for p, o, l in (x.split() for x in open(writes))][:to]
def model(off, length):
    buf = bytearray(length)
    for p, o, l in ws:
        a, b = max(o, off), min(o + l, off + length)
        if a < b:
            buf[a - off:b - off] = bytes([p]) * (b - a)
    return bytes(buf)
idx = json.load(open(os.path.join(d, "index.json")))
data = [e for e in idx["extents"] if e["kind"] == "data"]
names = sorted(f for f in os.listdir(os.path.join(d, "data")) if f.endswith(".raw"))
assert len(names) == len(data), f"{len(names)} chunk files, {len(data)} data extents"
total = 0
for e in data:
    f = os.path.join(d, "data", "%016x-%016x.raw" % (e["offset"], e["length"]))
    raw = open(f, "rb").read()
    assert len(raw) == e["length"], f"{f}: {len(raw)} bytes, index says {e['length']}"
    assert hashlib.sha256(raw).hexdigest() == e["sha256"], f"{f}: sha256 differs from the index"
    assert raw == model(e["offset"], e["length"]), f"{f}: bytes differ from the written patterns"
    total += e["length"]
covered = lambda o, l: all(any(e["offset"] <= x < e["offset"] + e["length"] for e in data)
                           for x in range(o, o + l, 65536))
blocks = set()  # the union of the writes, in 64 KiB blocks (all writes are aligned)
for p, o, l in ws[frm:]:
    assert covered(o, l), f"write {p:#x} at {o} +{l} is not in a data chunk"
    blocks.update(range(o >> 16, (o + l) >> 16))
dirty = len(blocks) << 16
assert total == dirty, f"data chunks hold {total} bytes, {dirty} were written"
print(f"{name}: {len(data)} chunks, {total} data bytes: OK", file=sys.stderr)
EOF
}

# check_locations NAME: every location the catalog records for backup NAME
# (archives and manifest) matches the file on the target.
check_locations() {
    local id n=0 key size sha
    id=$(json_get "$VK_SCRATCH/$1.json" 'j["backup"]')
    while IFS='|' read -r key size sha; do
        n=$((n + 1))
        [ -f "$tgt/$key" ] || vk_fail "$key is recorded but not on the target"
        expect_eq "$(stat -c %s "$tgt/$key")" "$size" "size of $key"
        expect_eq "$(sha256sum "$tgt/$key" | cut -d' ' -f1)" "$sha" "sha256 of $key"
    done < <(sqlite3 "$cat" "SELECT object_key, size, sha256 FROM archive_locations
                             WHERE backup_id = '$id'")
    expect_eq "$n" 2 "locations of $id (archive + manifest)"
    expect_eq "$(json_get "$VK_SCRATCH/$1.json" 'j["disks"][0]["sha256"]')" \
        "$(sha256sum "$tgt/$(json_get "$VK_SCRATCH/$1.json" 'j["disks"][0]["key"]')" | cut -d' ' -f1)" \
        "sha256 in the --json output of $1"
    [ -f "$tgt/$dom/$id/manifest.json" ] || vk_fail "no manifest for $id"
}

level_parent() {
    json_get "$VK_SCRATCH/$1.json" 'j["level"] + " " + str(j["parent"]) + " " + j["status"]'
}

# ---------------------------------------------------------------- the chain
write 0x11 0 8M
write 0x22 100M 4M
backup full --level auto
w_full=$(mark)
expect_eq "$(level_parent full)" "full None committed" "first backup"
expect_eq "$(json_get "$VK_SCRATCH/full.json" 'j["requested_level"]')" auto "requested level"
full_id=$(json_get "$VK_SCRATCH/full.json" 'j["backup"]')
full_cp=$(json_get "$VK_SCRATCH/full.json" 'j["checkpoint"]')
case $full_cp in virtkeep-*) ;; *) vk_fail "checkpoint of the full: '$full_cp'" ;; esac

write 0x33 200M 1M
backup inc1
w_inc1=$(mark)
expect_eq "$(level_parent inc1)" "inc $full_id committed" "auto after a full"
inc1_id=$(json_get "$VK_SCRATCH/inc1.json" 'j["backup"]')

write 0x44 $((100 * M + 512 * K)) 256K
backup inc2 --level inc
w_inc2=$(mark)
expect_eq "$(level_parent inc2)" "inc $inc1_id committed" "explicit inc"
inc2_id=$(json_get "$VK_SCRATCH/inc2.json" 'j["backup"]')

write 0x55 300M 2M
backup diff --level diff
w_diff=$(mark)
expect_eq "$(level_parent diff)" "diff $full_id committed" "diff"
diff_id=$(json_get "$VK_SCRATCH/diff.json" 'j["backup"]')

check_archive full 0 "$w_full"
check_archive inc1 "$w_full" "$w_inc1"
check_archive inc2 "$w_inc1" "$w_inc2"
check_archive diff "$w_full" "$w_diff"
for b in full inc1 inc2 diff; do
    check_locations "$b"
done

# Checkpoints: one per backup, all ours, the newest the diff's.
expect_eq "$("${VK_VIRSH[@]}" checkpoint-list "$dom" --name --topological | grep -c .)" 4 \
    "checkpoints after four backups"

# ---------------------------------------------------------------- list, show
vk list "$dom" --json >"$VK_SCRATCH/list.json" || vk_fail "list --json"
expect_eq "$(json_get "$VK_SCRATCH/list.json" \
    '" ".join(b["level"] + ":" + str(b["parent"]) for b in j["backups"])')" \
    "full:None inc:$full_id inc:$inc1_id diff:$full_id" "the chain in list --json"
expect_eq "$(json_get "$VK_SCRATCH/list.json" 'len(j["backups"][1]["locations"])')" 2 \
    "locations in list --json"
vk list | grep -q "^$inc2_id .* inc .*committed" || vk_fail "list does not show $inc2_id"
vk show "$inc2_id" --json >"$VK_SCRATCH/show.json" || vk_fail "show --json"
expect_eq "$(json_get "$VK_SCRATCH/show.json" '" ".join(j["chain"])')" \
    "$full_id $inc1_id $inc2_id" "chain of $inc2_id"
expect_eq "$(json_get "$VK_SCRATCH/show.json" 'j["checkpoint"]')" \
    "$(json_get "$VK_SCRATCH/inc2.json" 'j["checkpoint"]')" "checkpoint in show"
vk show "$diff_id" | grep -q "^Chain: *$full_id $diff_id$" || vk_fail "show $diff_id: chain"
rc=0
vk show "$dom-19700101T000000Z" >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 3 "show of an unknown backup"

# ---------------------------------------------------------------- copy
write 0x66 400M 1M
backup copy --level copy
expect_eq "$(level_parent copy)" "copy None committed" "copy"
expect_eq "$(json_get "$VK_SCRATCH/copy.json" 'j["checkpoint"]')" None "checkpoint of a copy"
check_archive copy 0 "$(mark)"
check_locations copy
expect_eq "$("${VK_VIRSH[@]}" checkpoint-list "$dom" --name | grep -c .)" 4 \
    "checkpoints after a copy"

# Not on a terminal, without --json: one summary line, nothing on stderr.
vk backup "$dom" --target "file://$tgt" >"$VK_SCRATCH/sum.out" 2>"$VK_SCRATCH/sum.err" ||
    vk_fail "backup without --json: $(cat "$VK_SCRATCH/sum.err")"
grep -Eq "^backup $dom-[0-9TZ]+: inc of $dom, 1 disk, read .* stored .* in .* -> target 'file://$tgt'$" \
    "$VK_SCRATCH/sum.out" || vk_fail "summary line: $(cat "$VK_SCRATCH/sum.out")"
[ ! -s "$VK_SCRATCH/sum.err" ] || vk_fail "stderr is not quiet: $(cat "$VK_SCRATCH/sum.err")"
expect_eq "$(grep -c . "$VK_SCRATCH/sum.out")" 1 "lines of the summary"
[ -z "$(ls /var/lib/virtkeep/run 2>/dev/null | grep -v '^$' || true)" ] ||
    vk_log "note: /var/lib/virtkeep/run is not empty (another test may be running)"
vk_log "PASS"
