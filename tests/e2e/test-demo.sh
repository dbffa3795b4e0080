#!/bin/bash
# End-to-end test of scripts/demo, the README's first command, on the tree
# already built (--no-install --no-build, VIRTKEEP_DEMO_BUILD_DIR).
#
# 1. A normal run exits 0 and prints the summary: a full and an inc backup of
#    virtkeep-demo-PID, two restores (chains of 1 and 2) identical to the data
#    written, verify with 0 failed, "demo OK" last; the domain and the work
#    directory are gone afterwards.
# 2. Through a virtkeep wrapper that damages each restored image, the demo
#    must notice: exit 1 naming the image that differs.  With --keep, the
#    domain and the work directory stay, and the catalog there lists both
#    backups as committed.
# 3. Usage errors: an unknown option exits 2, --no-build without a binary 1.
. "$abs_top_srcdir/tests/lib/harness.sh"

vk_require_root_or_skip
vk_require_cmd jq qemu-img qemu-io numfmt runuser timeout
vk_start_libvirtd
VK_BIN=$abs_top_builddir/src/virtkeep
[ -x "$VK_BIN" ] || vk_fail "'$VK_BIN' is not built"
DEMO=$abs_top_srcdir/scripts/demo

# demo NAME BUILD_DIR ARGS...: run the demo; stdout in $VK_SCRATCH/NAME.out,
# stderr in NAME.err, exit status in $rc.  Its work directory goes under
# $VK_SCRATCH/NAME so that the test can tell whether it was removed.
demo() {
    local name=$1 build=$2
    shift 2
    mkdir -p "$VK_SCRATCH/$name"
    rc=0
    VIRTKEEP_DEMO_BUILD_DIR=$build VIRTKEEP_DEMO_TMPDIR=$VK_SCRATCH/$name \
        timeout 300 "$DEMO" --no-install --no-build "$@" \
        >"$VK_SCRATCH/$name.out" 2>"$VK_SCRATCH/$name.err" || rc=$?
    # Whatever the demo left behind goes when the test ends.
    dom=$(sed -n "s/^virtkeep: creating domain '\([^']*\)'.*/\1/p" "$VK_SCRATCH/$name.err")
    [ -z "$dom" ] || vk_on_exit "! domain_exists '$dom' || vk_domain_remove '$dom'"
}

show() {
    sed 's/^/  stdout: /' "$VK_SCRATCH/$1.out" >&2
    sed 's/^/  stderr: /' "$VK_SCRATCH/$1.err" >&2
}

domain_exists() {
    "${VK_VIRSH[@]}" dominfo "$1" >/dev/null 2>&1
}

# -- 1. a normal run --------------------------------------------------------
demo ok "$abs_top_builddir"
out=$VK_SCRATCH/ok.out
[ "$rc" = 0 ] || {
    show ok
    vk_fail "the demo exited with status $rc"
}
[[ $dom == virtkeep-demo-* ]] || vk_fail "the demo named no domain 'virtkeep-demo-*': '$dom'"
tail -n 1 "$out" | grep -Eq '^demo OK \([0-9]+ s\)$' || {
    show ok
    vk_fail "the last line is not 'demo OK (N s)'"
}
# Backups: "  ID LEVEL STARTED READ STORED SECONDS", one full then one inc.
mapfile -t bk < <(grep -E "^  $dom-[0-9]{8}T[0-9]{6}Z +[a-z]+ +[0-9TZ:-]+ +[0-9.]+ [KMG]?i?B +" "$out")
[ ${#bk[@]} = 2 ] || {
    show ok
    vk_fail "expected 2 backup lines, got ${#bk[@]}"
}
full_id=$(awk '{print $1}' <<<"${bk[0]}")
inc_id=$(awk '{print $1}' <<<"${bk[1]}")
vk_expect() { [ "$1" = "$2" ] || vk_fail "$3: expected '$2', got '$1'"; }
vk_expect "$(awk '{print $2}' <<<"${bk[0]}")" full "level of the first backup"
vk_expect "$(awk '{print $2}' <<<"${bk[1]}")" inc "level of the second backup"
[ "$full_id" != "$inc_id" ] || vk_fail "both backups have the id $full_id"
# Restores: "  POINT BACKUP CHAIN SECONDS identical"; the point in time of the
# full restores the full alone, the latest the full and the inc.
grep -Eq "^  --at [0-9TZ:-]+ +$full_id +1 +[0-9.]+  identical$" "$out" || {
    show ok
    vk_fail "no line says the restore at the full's time used $full_id alone and is identical"
}
grep -Eq "^  latest +$inc_id +2 +[0-9.]+  identical$" "$out" || {
    show ok
    vk_fail "no line says the latest restore used a chain of 2 ending at $inc_id and is identical"
}
grep -qx "  the latest restore is also identical to the live disk of $dom" "$out" ||
    vk_fail "the summary does not compare the latest restore with the live disk"
grep -Eq '^verify: 4 objects checked .*, 0 failed$' "$out" || {
    show ok
    vk_fail "the summary does not say that verify checked 4 objects with 0 failed"
}
! domain_exists "$dom" || vk_fail "the demo left domain '$dom' behind"
[ -z "$(ls -A "$VK_SCRATCH/ok")" ] ||
    vk_fail "the demo left its work directory behind: $(ls "$VK_SCRATCH/ok")"
vk_log "a normal run passed (domain $dom, backups $full_id, $inc_id)"

# -- 2. a damaged restore is caught; --keep keeps everything ----------------
mkdir -p "$VK_SCRATCH/fake/src"
cat >"$VK_SCRATCH/fake/src/virtkeep" <<EOF
#!/bin/bash
# The real virtkeep, then one byte of guest data changed in a restored image.
set -e
'$VK_BIN' "\$@"
prev= dest=
for a in "\$@"; do
    [ "\$prev" != --dest ] || dest=\$a
    prev=\$a
done
[ -z "\$dest" ] || qemu-io -f qcow2 -c 'write -P 0x00 1M 512' "\$dest/vda.qcow2" >/dev/null
EOF
chmod +x "$VK_SCRATCH/fake/src/virtkeep"
demo bad "$VK_SCRATCH/fake" --keep
[ "$rc" = 1 ] || {
    show bad
    vk_fail "the demo with a damaged restore exited with status $rc, expected 1"
}
grep -Eq "the restored image .*/restore-1/vda.qcow2 differs from the data written" \
    "$VK_SCRATCH/bad.err" || {
    show bad
    vk_fail "the demo did not say which restored image differs"
}
! grep -q '^demo OK' "$VK_SCRATCH/bad.out" || vk_fail "a failed demo printed 'demo OK'"
grep -q 'demo FAILED (exit status 1)' "$VK_SCRATCH/bad.err" || vk_fail "no 'demo FAILED' line"
domain_exists "$dom" || vk_fail "--keep did not keep domain '$dom'"
work=$(find "$VK_SCRATCH/bad" -mindepth 1 -maxdepth 1 -name 'virtkeep-demo.*')
{ [ -n "$work" ] && [ -f "$work/catalog.db" ]; } || vk_fail "--keep did not keep the work directory"
vk_on_exit "rm -rf '$work'"
"$VK_BIN" --config "$work/virtkeep.conf" --catalog "$work/catalog.db" list "$dom" --json \
    >"$VK_SCRATCH/list.json" || vk_fail "virtkeep list failed on the kept catalog"
vk_expect "$(jq -r '[.backups[] | select(.status == "committed") | .level] | join(",")' \
    "$VK_SCRATCH/list.json")" "full,inc" "committed backups in the kept catalog"
vk_log "a damaged restore was caught and --keep kept the domain and $work"

# -- 3. usage errors -----------------------------------------------------------
rc=0
"$DEMO" --bogus >/dev/null 2>"$VK_SCRATCH/usage.err" || rc=$?
vk_expect "$rc" 2 "exit status for an unknown option"
grep -q "unknown option '--bogus'" "$VK_SCRATCH/usage.err" || vk_fail "no message for --bogus"
"$DEMO" --help | grep -q '^Usage: scripts/demo' || vk_fail "--help prints no usage"
mkdir -p "$VK_SCRATCH/empty"
demo nobuild "$VK_SCRATCH/empty"
vk_expect "$rc" 1 "exit status of --no-build without a binary"
grep -q "empty/src/virtkeep is not built" "$VK_SCRATCH/nobuild.err" ||
    vk_fail "no clear message for --no-build without a binary"
vk_log "PASS"
