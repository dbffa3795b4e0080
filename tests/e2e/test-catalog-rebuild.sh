#!/bin/bash
# Disaster recovery: `virtkeep catalog rebuild` against real backups.  One
# domain backs up full -> inc -> diff to a file:// target, another to an
# ssh:// target (the harness sshd, key_file + known_hosts).  Every point is
# restored from the original catalog; then the catalog file is deleted and
# rebuilt from the two targets alone.  `list` must show the same backups
# (id, level, status, parent, checkpoint, times, sizes, locations), every
# point restored from the rebuilt catalog must equal the restore from the
# original (qemu-img compare), and a second rebuild is an idempotent merge
# that names an incomplete backup (archives, no manifest) and an unreadable
# manifest.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"

vk_bk_setup
vk_require_cmd jq qemu-img
vk_start_sshd
sshdir=$VK_SCRATCH/ssh-target
mkdir -p "$sshdir"
cat >>"$VK_BK_CONFIG" <<EOF

[target offsite]
url = ssh://$VK_SSH_USER@$VK_SSH_HOST:$VK_SSH_PORT$sshdir
key_file = $VK_SSH_KEY
known_hosts = $VK_SSH_KNOWN_HOSTS
EOF

size=64M
doms=()
declare -A tgt
for t in main offsite; do
    d=vk-rebuild-$t-$$-$RANDOM
    doms+=("$d")
    tgt[$d]=$t
    vk_domain_create "$d" "$size" 1
    vk_domain_start "$d"
done

n=0
for d in "${doms[@]}"; do
    for level in full inc diff; do
        n=$((n + 1))
        vk_domain_write "$d" vda "0x$((n + 10))" "$((n * 3))M" 2M
        vk_domain_write "$d" vda "0x$((n + 40))" 8M 1M # rewritten at every point
        sleep 1                                       # ids have a resolution of one second
        vk_backup 0 "$d" --level "$level" --target "${tgt[$d]}"
        vk_expect_eq "$(vk_bk .level)" "$level" "level of a backup of $d"
    done
done

# list FILE: the fields a rebuild must reproduce, for both domains.
list_save() {
    local d
    for d in "${doms[@]}"; do
        vk_list "$d"
        # finished is left out: the catalog stamps it at commit, the manifest
        # just before (they may differ by a second).
        jq -S '[.backups[] | {id, domain, level, status, checkpoint, parent, started,
                bytes_read, bytes_stored,
                locations: [.locations[] | {disk, target, key, size, sha256}] | sort_by(.key)}]' \
            "$VK_SCRATCH/list.json"
    done >"$1"
}

restore_all() { # PREFIX: restore every backup into PREFIX-ID/
    local d id
    for d in "${doms[@]}"; do
        vk_list "$d"
        for id in $(vk_list_ids committed); do
            vk_vk restore "$d" --backup "$id" --dest "$1-$id" >/dev/null 2>"$VK_SCRATCH/r.err" || {
                cat "$VK_SCRATCH/r.err" >&2
                vk_fail "restore of $id ($1) failed"
            }
        done
    done
}

list_save "$VK_SCRATCH/list-orig.json"
vk_expect_eq "$(jq -s 'map(length) | add' "$VK_SCRATCH/list-orig.json")" 6 "backups before"
restore_all "$VK_SCRATCH/orig"

# --- the disaster ------------------------------------------------------------
rm -f "$VK_BK_CATALOG" "$VK_BK_CATALOG-wal" "$VK_BK_CATALOG-shm"
for t in main offsite; do
    vk_vk catalog rebuild --target "$t" --json >"$VK_SCRATCH/rebuild-$t.json" \
        2>"$VK_SCRATCH/rebuild-$t.err" || {
        cat "$VK_SCRATCH/rebuild-$t.err" >&2
        vk_fail "catalog rebuild --target $t failed"
    }
    j=$VK_SCRATCH/rebuild-$t.json
    vk_expect_eq "$(jq -r .manifests "$j")" 3 "manifests on $t"
    vk_expect_eq "$(jq -r .added "$j")" 3 "backups added from $t"
    vk_expect_eq "$(jq -r '.unreadable | length' "$j")" 0 "unreadable manifests on $t"
    vk_expect_eq "$(jq -r '.incomplete | length' "$j")" 0 "incomplete backups on $t"
done
list_save "$VK_SCRATCH/list-rebuilt.json"
diff -u "$VK_SCRATCH/list-orig.json" "$VK_SCRATCH/list-rebuilt.json" >&2 ||
    vk_fail "list after the rebuild differs from the original"
vk_log "rebuilt catalog lists the same 6 backups"

# The rebuilt catalog has no throughput history: the plan is a guess.
plan() {
    vk_vk plan restore "${doms[0]}" --json >"$VK_SCRATCH/plan.json" 2>"$VK_SCRATCH/plan.err" || {
        cat "$VK_SCRATCH/plan.err" >&2
        vk_fail "plan restore failed"
    }
}
plan
vk_expect_eq "$(jq -r .guess "$VK_SCRATCH/plan.json")" true "plan without history is a guess"
vk_expect_eq "$(jq -r '.chain | length' "$VK_SCRATCH/plan.json")" 2 "plan chain (full + diff)"
vk_expect_eq "$(jq -r '.targets[0].target' "$VK_SCRATCH/plan.json")" main "plan target"
restore_all "$VK_SCRATCH/rebuilt"
plan
vk_expect_eq "$(jq -r .guess "$VK_SCRATCH/plan.json")" false "plan after restores measured"
for dir in "$VK_SCRATCH"/orig-*; do
    id=${dir#"$VK_SCRATCH/orig-"}
    qemu-img compare -q "$dir/vda.qcow2" "$VK_SCRATCH/rebuilt-$id/vda.qcow2" ||
        vk_fail "restore of $id from the rebuilt catalog differs from the original's"
done
vk_log "every point restores identically from the rebuilt catalog"

# --- restore by hand (docs/FORMAT.md), on the file:// chain -------------------
vk_require_cmd fallocate dd awk
awk '/^# Restore by hand: rebuild OUT/ {on = 1} on && /^```/ {exit} on {print}' \
    "$abs_top_srcdir/docs/FORMAT.md" >"$VK_SCRATCH/restore-by-hand.sh"
grep -q 'fallocate -p' "$VK_SCRATCH/restore-by-hand.sh" ||
    vk_fail "no restore-by-hand script found in docs/FORMAT.md"
d=${doms[0]}
vk_list "$d"
for id in $(vk_list_ids committed); do
    chain=() # from the manifests alone, as the document says: follow parent_id
    p=$id
    while [ "$p" != null ]; do
        chain=("$VK_BK_TARGET/$d/$p/vda.tar" "${chain[@]}")
        p=$(jq -r .parent_id "$VK_BK_TARGET/$d/$p/manifest.json")
    done
    bash "$VK_SCRATCH/restore-by-hand.sh" "$VK_SCRATCH/hand-$id.raw" "${chain[@]}" ||
        vk_fail "the restore-by-hand script failed on $id"
    qemu-img compare -q -f raw -F qcow2 "$VK_SCRATCH/hand-$id.raw" "$VK_SCRATCH/orig-$id/vda.qcow2" ||
        vk_fail "restore by hand of $id (chain of ${#chain[@]}) differs from virtkeep restore"
    vk_log "restore by hand of $id (chain of ${#chain[@]}) equals virtkeep restore"
done

# --- an idempotent second rebuild names what it cannot use -------------------
d=${doms[0]}
mkdir -p "$VK_BK_TARGET/$d/$d-20991231T000000Z" "$VK_BK_TARGET/$d/$d-20991231T000001Z"
echo partial >"$VK_BK_TARGET/$d/$d-20991231T000000Z/vda.tar"
echo '{"format": "virtkeep-manifest", "version": 2' \
    >"$VK_BK_TARGET/$d/$d-20991231T000001Z/manifest.json"
rc=0
vk_vk catalog rebuild --target main --json >"$VK_SCRATCH/again.json" 2>"$VK_SCRATCH/again.err" ||
    rc=$?
vk_expect_eq "$rc" 1 "exit status of a rebuild with an unreadable manifest"
j=$VK_SCRATCH/again.json
vk_expect_eq "$(jq -r .added "$j")" 0 "backups added by the second rebuild"
vk_expect_eq "$(jq -r .known "$j")" 3 "backups already known"
vk_expect_eq "$(jq -r '.incomplete | join(" ")' "$j")" "$d/$d-20991231T000000Z" "incomplete"
vk_expect_eq "$(jq -r '.unreadable | length' "$j")" 1 "unreadable manifests"
vk_expect_grep "$VK_SCRATCH/again.err" "$d-20991231T000001Z/manifest.json" "unreadable named"
list_save "$VK_SCRATCH/list-again.json"
diff -u "$VK_SCRATCH/list-orig.json" "$VK_SCRATCH/list-again.json" >&2 ||
    vk_fail "a second rebuild changed the catalog"
vk_log "PASS"
