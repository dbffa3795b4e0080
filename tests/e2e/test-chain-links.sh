#!/bin/bash
# Chain links are protected (the hash chain of the manifests, docs/FORMAT.md).
# A domain backs up full -> inc1 -> inc2 to a file:// target.  Each case
# works on its own copy of that target:
#   * inc2's parent_id flipped to the full: `catalog rebuild` into a fresh
#     catalog refuses inc2 (exit 1, the link named); with a catalog that
#     records the flipped link (as a rebuild before the fix did), `verify`
#     reports the broken link and `restore` refuses, and with the original
#     catalog restore refuses the manifest that no longer matches;
#   * rebuild refuses invalid UTF-8 in the domain XML, a wrong
#     archive_sha256 (in inc1's manifest: inc2's link no longer holds) and a
#     parent that does not exist (the full removed);
#   * a version-2 manifest (no parent digest) is still rebuilt, its link
#     reported as not checked; a sound target rebuilds with every link
#     checked and restores.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq python3 qemu-img

dom=vk-links-$$-$RANDOM
vk_domain_create "$dom" 64M 1
vk_domain_start "$dom"
ids=()
n=0
for level in full inc inc; do
    n=$((n + 1))
    vk_domain_write "$dom" vda "0x$((n + 20))" "$((n * 4))M" 2M
    sleep 1 # ids have a resolution of one second
    vk_backup 0 "$dom" --level "$level"
    ids+=("$(vk_bk .backup)")
done
full=${ids[0]} inc1=${ids[1]} inc2=${ids[2]}
vk_expect_eq "$(jq -r .version "$VK_BK_TARGET/$dom/$inc2/manifest.json")" 3 "manifest version"
vk_expect_eq "$(jq -r .parent_manifest_sha256 "$VK_BK_TARGET/$dom/$inc2/manifest.json")" \
    "$(sha256sum "$VK_BK_TARGET/$dom/$inc1/manifest.json" | cut -d' ' -f1)" \
    "inc2 records the sha256 of inc1's manifest"
vk_expect_eq "$(jq -r .parent_manifest_sha256 "$VK_BK_TARGET/$dom/$full/manifest.json")" null \
    "a full records no parent digest"

# case NAME: a fresh copy of the target in $VK_SCRATCH/NAME, and its manifests.
case_copy() {
    rm -rf "${VK_SCRATCH:?}/$1"
    cp -a "$VK_BK_TARGET" "$VK_SCRATCH/$1"
}
mf() { # CASE ID: the manifest of backup ID in the copy CASE
    echo "$VK_SCRATCH/$1/$dom/$2/manifest.json"
}

# rebuild CASE WANT_RC: `catalog rebuild` of the copy into a fresh catalog.
rebuild() {
    local rc=0
    rm -f "$VK_SCRATCH/$1.db"
    "$VK_BIN" --catalog "$VK_SCRATCH/$1.db" catalog rebuild --target "file://$VK_SCRATCH/$1" \
        --json >"$VK_SCRATCH/$1.json" 2>"$VK_SCRATCH/$1.err" || rc=$?
    if [ "$rc" != "$2" ]; then
        sed 's/^/  | /' "$VK_SCRATCH/$1.json" "$VK_SCRATCH/$1.err" >&2
        vk_fail "catalog rebuild of case $1: exit status $rc, expected $2"
    fi
}
rj() { jq -r "$2" "$VK_SCRATCH/$1.json"; }

# --- a sound target: every link checked -------------------------------------
case_copy sound
rebuild sound 0
vk_expect_eq "$(rj sound .added)" 3 "sound: backups added"
vk_expect_eq "$(rj sound '.refused | length')" 0 "sound: refused"
vk_expect_eq "$(rj sound '[.unchecked[] | select(test("link to its parent"))] | length')" 0 \
    "sound: links not checked"
vk_expect_eq "$(rj sound '[.unchecked[] | select(test("newest of its chain"))] | length')" 1 \
    "sound: the newest manifest is reported as vouched for by no child"
vk_expect_eq "$(rj sound '[.unchecked[] | select(test("archive"))] | length')" 1 \
    "sound: whole-archive digests are reported as not checked"
vk_vk verify "$dom" --json >"$VK_SCRATCH/v-sound.json" || vk_fail "verify of a sound chain failed"
vk_expect_eq "$(jq -r '[.links[] | select(.ok and .checked)] | length' "$VK_SCRATCH/v-sound.json")" \
    2 "verify: checked links of a sound chain"

# --- the parent_id of inc2 flipped to the full ---------------------------------
case_copy flip
sed -i "s/\"parent_id\": \"$inc1\"/\"parent_id\": \"$full\"/" "$(mf flip "$inc2")"
vk_expect_eq "$(jq -r .parent_id "$(mf flip "$inc2")")" "$full" "flipped parent_id"
rebuild flip 1
vk_expect_eq "$(rj flip .added)" 2 "flip: backups added (full, inc1)"
vk_expect_eq "$(rj flip '.refused | length')" 1 "flip: refused backups"
vk_expect_grep "$VK_SCRATCH/flip.err" "refused backup $inc2: .*chain link.*domain '$dom'.*parent '$full'.*'$dom/$full/manifest.json'" \
    "flip: the refused link is named"
vk_expect_eq "$(jq -r --arg id "$inc2" '[.backups[] | select(.id == $id)] | length' \
    <("$VK_BIN" --catalog "$VK_SCRATCH/flip.db" list "$dom" --json))" 0 "flip: inc2 not recorded"

# The catalog a rebuild recorded before the fix: inc2's parent is the full
# and its manifest's digest is the flipped one.  The chain is on "main".
cp -a "$VK_SCRATCH/flip/$dom/$inc2/manifest.json" "$VK_BK_TARGET/$dom/$inc2/manifest.json"
python3 - "$VK_BK_CATALOG" "$VK_SCRATCH/old.db" "$inc2" "$full" \
    "$(sha256sum "$VK_BK_TARGET/$dom/$inc2/manifest.json" | cut -d' ' -f1)" \
    "$(stat -c %s "$VK_BK_TARGET/$dom/$inc2/manifest.json")" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
dst.execute("UPDATE backups SET parent = ? WHERE id = ?", (sys.argv[4], sys.argv[3]))
dst.execute("UPDATE archive_locations SET sha256 = ?, size = ? WHERE backup_id = ? AND disk IS NULL",
            (sys.argv[5], int(sys.argv[6]), sys.argv[3]))
dst.commit()
PY
old() { "$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_SCRATCH/old.db" "$@"; }
rc=0
old verify "$dom" --json >"$VK_SCRATCH/v-old.json" 2>"$VK_SCRATCH/v-old.err" || rc=$?
vk_expect_eq "$rc" 1 "verify with the flipped link: exit status"
vk_expect_eq "$(jq -r '.failed' "$VK_SCRATCH/v-old.json")" 1 "verify: failed items"
vk_expect_eq "$(jq -r --arg id "$inc2" '.links[] | select(.backup == $id) | .ok' \
    "$VK_SCRATCH/v-old.json")" false "verify: the link of inc2 fails"
vk_expect_grep "$VK_SCRATCH/v-old.err" "chain link of backup '$inc2' of domain '$dom' is broken.*parent '$full'.*'$dom/$full/manifest.json'" \
    "verify names the broken link"
rc=0
old restore "$dom" --backup "$inc2" --dest "$VK_SCRATCH/r-old" >/dev/null 2>"$VK_SCRATCH/r-old.err" ||
    rc=$?
vk_expect_eq "$rc" 1 "restore through the flipped link: exit status"
vk_expect_grep "$VK_SCRATCH/r-old.err" "chain link of backup '$inc2' of domain '$dom' is broken.*parent '$full'" \
    "restore names the broken link"
[ ! -e "$VK_SCRATCH/r-old/vda.qcow2" ] || vk_fail "a refused restore left an image"
# The original catalog (parent inc1) no longer matches the manifest either.
rc=0
vk_vk restore "$dom" --backup "$inc2" --dest "$VK_SCRATCH/r-orig" >/dev/null \
    2>"$VK_SCRATCH/r-orig.err" || rc=$?
vk_expect_eq "$rc" 1 "restore with a changed manifest: exit status"
vk_expect_grep "$VK_SCRATCH/r-orig.err" "manifest of backup '$inc2' of domain '$dom'.*catalog records" \
    "restore names the changed manifest"
cp -a "$VK_SCRATCH/sound/$dom/$inc2/manifest.json" "$VK_BK_TARGET/$dom/$inc2/manifest.json"
vk_vk restore "$dom" --backup "$inc2" --dest "$VK_SCRATCH/r-ok" >/dev/null ||
    vk_fail "restore of the repaired chain failed"

# --- invalid UTF-8 in the domain XML ------------------------------------------
case_copy utf8
python3 - "$(mf utf8 "$inc2")" <<'PY'
import sys
p = sys.argv[1]
b = open(p, 'rb').read()
i = b.index(b'"xml": "<domain ') + len(b'"xml": "<domain')
open(p, 'wb').write(b[:i] + b' \xff\xfe' + b[i:])
PY
rebuild utf8 1
vk_expect_eq "$(rj utf8 .added)" 2 "utf8: backups added"
vk_expect_grep "$VK_SCRATCH/utf8.err" "$inc2/manifest.json.*domain XML is not valid UTF-8" \
    "utf8: the manifest is named"

# --- a wrong archive_sha256 ---------------------------------------------------
case_copy sha
python3 - "$(mf sha "$inc1")" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
m = re.search(r'"archive_sha256": "([0-9a-f])', s)
flip = '0' if m.group(1) != '0' else '1'
open(p, 'w').write(s[:m.start(1)] + flip + s[m.end(1):])
PY
rebuild sha 1
vk_expect_grep "$VK_SCRATCH/sha.err" "refused backup $inc2: .*parent '$inc1'.*'$dom/$inc1/manifest.json'" \
    "sha: the changed manifest of inc1 is named"

# --- a parent that does not exist ---------------------------------------------
case_copy orphan
rm -rf "${VK_SCRATCH:?}/orphan/$dom/$full"
rebuild orphan 1
vk_expect_eq "$(rj orphan .added)" 0 "orphan: backups added"
vk_expect_eq "$(rj orphan '.refused | length')" 2 "orphan: refused backups (inc1, inc2)"
vk_expect_grep "$VK_SCRATCH/orphan.err" "refused backup $inc1: .*parent '$full', which does not exist" \
    "orphan: the missing parent is named"

# --- a version-2 manifest: the link is not checked, not refused --------------
case_copy v2
python3 - "$(mf v2 "$inc2")" <<'PY'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
del m['parent_manifest_sha256']
m['version'] = 2
open(p, 'w').write(json.dumps(m, indent=2) + '\n')
PY
rebuild v2 0
vk_expect_eq "$(rj v2 .added)" 3 "v2: backups added"
vk_expect_eq "$(rj v2 "[.unchecked[] | select(test(\"'$inc2'.*link to its parent '$inc1'\"))] | length")" \
    1 "v2: the link of inc2 is reported as not checked"
vk_log "PASS"
