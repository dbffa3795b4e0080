#!/bin/bash
# End-to-end: `virtkeep catalog migrate --to postgresql://...` moves a
# populated single-host SQLite catalog into a real PostgreSQL 15
# (tests/lib/pg.sh: the server VK_PG_ENV names, else one of its own).
# A running domain gets a full and two incrementals (and a failed backup
# row) in the SQLite catalog; then:
#   - the migration copies it; `list --json` from PostgreSQL is identical
#     to `list --json` from SQLite;
#   - a second run copies nothing and succeeds (idempotent);
#   - a restore of the latest point from the PostgreSQL catalog is
#     byte-identical to the domain's disk;
#   - a row changed in PostgreSQL makes the next run fail, naming the
#     backup, and copy nothing.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/backup-lib.sh"
. "$abs_top_srcdir/tests/lib/pg.sh"

vk_bk_setup
case $VK_BK_CATALOG in
postgresql://*) vk_fail "this test needs the SQLite catalog as its source" ;;
esac

# ---- PostgreSQL: the shared server, or our own; a fresh database
vk_pg_e2e_catalog
url=$VK_PG_CATALOG
pgq() { vk_pg_sql "$1"; }

# ---- a populated SQLite catalog
dom=vk-catmig-$$-$RANDOM
vk_domain_create "$dom" 64M 1
vk_domain_start "$dom"
vk_domain_write "$dom" vda 0x11 0 4M
vk_backup 0 "$dom" --level full
sleep 1
vk_domain_write "$dom" vda 0x22 8M 2M
vk_backup 0 "$dom" --level inc
sleep 1
vk_backup fail "$dom" --level inc --target file:///nonexistent/dir/x || true
vk_domain_write "$dom" vda 0x33 20M 1M
vk_domain_write "$dom" vda 0x44 0 64k
vk_backup 0 "$dom" --level inc
last=$(vk_bk .backup)

vk_vk list --json >"$VK_SCRATCH/list-sqlite.json" || vk_fail "list from SQLite failed"
[ "$(jq ".backups | length" "$VK_SCRATCH/list-sqlite.json")" -ge 3 ] ||
    vk_fail "the SQLite catalog lists fewer than 3 backups: $(cat "$VK_SCRATCH/list-sqlite.json")"

# ---- migrate, twice
vk_vk catalog migrate --to "$url" --json >"$VK_SCRATCH/mig1.json" 2>"$VK_SCRATCH/mig1.err" || {
    cat "$VK_SCRATCH/mig1.err" >&2
    vk_fail "catalog migrate failed"
}
added=$(jq .added "$VK_SCRATCH/mig1.json")
[ "$added" -gt 5 ] || vk_fail "catalog migrate copied only $added rows"
! grep -qF "$(cat "$VK_PG_PASSWORD_FILE")" "$VK_SCRATCH/mig1.json" "$VK_SCRATCH/mig1.err" ||
    vk_fail "the migrate output shows the catalog's password"
vk_log "first run: $added rows copied"
vk_vk catalog migrate --to "$url" --json >"$VK_SCRATCH/mig2.json" || vk_fail "second run failed"
vk_expect_eq "$(jq .added "$VK_SCRATCH/mig2.json")" 0 "rows added by the second run"
vk_expect_eq "$(jq .known "$VK_SCRATCH/mig2.json")" "$added" "rows known to the second run"

"$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$url" list --json >"$VK_SCRATCH/list-pg.json" ||
    vk_fail "list from PostgreSQL failed"
diff -u "$VK_SCRATCH/list-sqlite.json" "$VK_SCRATCH/list-pg.json" >&2 ||
    vk_fail "list --json differs between the SQLite and the migrated PostgreSQL catalog"
vk_log "list --json identical ($(jq ".backups | length" "$VK_SCRATCH/list-pg.json") backups)"

# ---- restore the latest point from PostgreSQL
"${VK_VIRSH[@]}" destroy "$dom" >/dev/null
"$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$url" restore "$dom" --backup "$last" \
    --dest "$VK_SCRATCH/restored" --json >"$VK_SCRATCH/restore.json" 2>"$VK_SCRATCH/restore.err" || {
    cat "$VK_SCRATCH/restore.err" >&2
    vk_fail "restore of $last from the migrated catalog failed"
}
qemu-img compare -q "$(vk_domain_image "$dom" vda)" "$VK_SCRATCH/restored/vda.qcow2" ||
    vk_fail "the restore of $last from PostgreSQL differs from the domain's disk"
vk_log "restore of $last from PostgreSQL is identical to the disk"

# ---- a conflicting row: refused, named, nothing copied
pgq "UPDATE backups SET bytes_stored = bytes_stored + 1 WHERE id = '$last'"
sleep 1
"${VK_VIRSH[@]}" start "$dom" >/dev/null
vk_backup 0 "$dom" --level inc
newer=$(vk_bk .backup)
rc=0
vk_vk catalog migrate --to "$url" >/dev/null 2>"$VK_SCRATCH/mig3.err" || rc=$?
[ "$rc" != 0 ] || vk_fail "a conflicting row was not refused"
grep -q "backups '$last'" "$VK_SCRATCH/mig3.err" ||
    vk_fail "the refusal does not name backup $last: $(cat "$VK_SCRATCH/mig3.err")"
grep -q "nothing was copied" "$VK_SCRATCH/mig3.err" ||
    vk_fail "the refusal does not say that nothing was copied: $(cat "$VK_SCRATCH/mig3.err")"
[ "$(pgq "SELECT count(*) FROM backups WHERE id = '$newer'")" = 0 ] ||
    vk_fail "backup $newer was copied although the migration was refused"
vk_log "conflict refused: $(head -c 300 "$VK_SCRATCH/mig3.err")"
