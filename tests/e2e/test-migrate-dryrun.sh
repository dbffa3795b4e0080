#!/usr/bin/env bash
# virtkeep - `migrate --dry-run` runs every pre-check, reports each failure
# clearly, and moves nothing: a destination without enough memory, a missing
# disk path, a name collision, a UUID collision, all three failures at once,
# an unreachable destination, and a domain that passes.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"
vk_mig_setup

# More memory than this machine has, so more than the destination has free.
huge=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 2))

# check_status CHECK STATUS [DETAIL-REGEX]: a check of the last dry run.
check_status() {
    local got detail
    got=$(vk_mig_out ".checks[] | select(.check == \"$1\") | .status")
    detail=$(vk_mig_out ".checks[] | select(.check == \"$1\") | .detail")
    [ "$got" = "$2" ] || vk_fail "check '$1' is '$got', expected '$2' ($detail)"
    if [ -n "${3:-}" ]; then
        echo "$detail" | grep -Eq "$3" || vk_fail "check '$1' says '$detail', expected /$3/"
    fi
}

# failed_checks: the names of the failed checks, sorted, on one line.
failed_checks() {
    vk_mig_out '[.checks[] | select(.status == "fail") | .check] | sort | join(",")'
}

dry() {
    vk_mig_cmd "$1" migrate "$2" --to "${3:-$VK_MIG_DST}" --dry-run
    [ "$(vk_mig_out .dry_run)" = true ] || vk_fail "the result of '$2' does not say dry run"
}

# --- not enough memory on the destination ----------------------------------
vk_mig_domain src big "$huge" 16M
dry 1 big
[ "$(failed_checks)" = memory ] || vk_fail "big: failed checks are '$(failed_checks)', expected memory"
check_status memory fail "needs .* but the destination has only .* free"
check_status storage\ vda pass
grep -q 'failed its pre-checks: memory' "$VK_MIG_ERR" || vk_fail "stderr does not name the memory check"

# --- a disk path missing ---------------------------------------------------
vk_mig_domain src nodisk 64 16M
rm -f "$VK_SCRATCH/images/nodisk-vda.qcow2"
dry 1 nodisk
[ "$(failed_checks)" = "storage vda" ] || vk_fail "nodisk: failed checks are '$(failed_checks)'"
check_status "storage vda" fail "'$VK_SCRATCH/images/nodisk-vda.qcow2' does not exist"

# --- name collision, and UUID collision --------------------------------------
vk_mig_domain src twin 64 16M
sed -e '/<uuid>/d' "$VK_SCRATCH/twin.xml" >"$VK_SCRATCH/twin-dst.xml"
vk_mig_virsh dst define "$VK_SCRATCH/twin-dst.xml" >/dev/null
dry 1 twin
[ "$(failed_checks)" = name ] || vk_fail "twin: failed checks are '$(failed_checks)'"
check_status name fail "a domain named 'twin' already exists on the destination"
check_status uuid pass

vk_mig_domain src original 64 16M
uuid=$(vk_mig_virsh src domuuid original)
sed -e "s|<name>original</name>|<name>copycat</name><uuid>$uuid</uuid>|" \
    "$VK_SCRATCH/original.xml" >"$VK_SCRATCH/copycat.xml"
vk_mig_virsh dst define "$VK_SCRATCH/copycat.xml" >/dev/null
dry 1 original
[ "$(failed_checks)" = uuid ] || vk_fail "original: failed checks are '$(failed_checks)'"
check_status uuid fail "UUID $uuid is already used by domain 'copycat'"

# --- all at once: every failure is reported, not just the first --------------
vk_mig_domain src twin2 "$huge" 16M
rm -f "$VK_SCRATCH/images/twin2-vda.qcow2"
sed -e 's|<name>twin</name>|<name>twin2</name>|' "$VK_SCRATCH/twin-dst.xml" >"$VK_SCRATCH/twin2-dst.xml"
vk_mig_virsh dst define "$VK_SCRATCH/twin2-dst.xml" >/dev/null
dry 1 twin2
[ "$(failed_checks)" = "memory,name,storage vda" ] ||
    vk_fail "twin2: failed checks are '$(failed_checks)', expected memory, name and storage vda"
grep -q 'failed its pre-checks: memory, storage vda, name' "$VK_MIG_ERR" ||
    vk_fail "stderr does not name the three failures: $(cat "$VK_MIG_ERR")"
# The table (without --json) names each failure on its own line.
rc=0
"$VK_BIN" --config "$VK_MIG_CONFIG" -c "$VK_MIG_SRC" migrate twin2 --to "$VK_MIG_DST" --dry-run \
    >"$VK_SCRATCH/table.txt" 2>&1 || rc=$?
[ "$rc" = 1 ] || vk_fail "the dry run without --json exited with $rc"
for c in memory 'storage vda' name; do
    grep -Eq "^$c +FAIL " "$VK_SCRATCH/table.txt" || vk_fail "the table has no FAIL line for $c"
done
grep -Eq '^reachable +pass ' "$VK_SCRATCH/table.txt" || vk_fail "the table has no reachable line"
grep -q '^dry run failed: 3 pre-checks failed' "$VK_SCRATCH/table.txt" || vk_fail "no summary line"

# --- unreachable destination ------------------------------------------------
dry 1 big "qemu+unix:///session?socket=$VK_SCRATCH/nowhere.sock"
check_status reachable fail "cannot connect"
check_status memory skip "unreachable"

# --- a domain that passes: exit 0, and nothing moved ------------------------
vk_mig_domain src fine 64 16M
vk_mig_virsh src start fine >/dev/null
dry 0 fine
[ "$(vk_mig_out '.checks | length')" = 6 ] || vk_fail "the passing dry run has not six checks"
[ "$(failed_checks)" = "" ] || vk_fail "fine: failed checks '$(failed_checks)'"
check_status cpu pass "compatible"
[ "$(vk_mig_state src fine)" = running ] || vk_fail "the dry run moved 'fine'"
[ "$(vk_mig_state dst fine)" = absent ] || vk_fail "the dry run defined 'fine' on the destination"
[ "$(vk_mig_sql "SELECT count(*) FROM jobs" 2>/dev/null || echo 0)" = 0 ] ||
    vk_fail "a dry run recorded a job"
vk_log "PASS"
