#!/usr/bin/env bash
# virtkeep - `evacuate`: every running domain (and, with --include-stopped,
# every stopped one) leaves the source for one of two destinations, two at a
# time; the report names domain, destination, outcome, duration and
# downtime.  Then a deliberately failing domain (its name is taken on the
# destination) does not stop the two others.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"
vk_mig_setup dst2
VK_MIG_DST2=$(vk_mig_uri dst2)

host_of() {
    case $1 in
    "$VK_MIG_DST") echo dst ;;
    "$VK_MIG_DST2") echo dst2 ;;
    *) vk_fail "'$1' is not one of the destinations" ;;
    esac
}

# check_item NAME OUTCOME: the report line of NAME; for "migrated", the
# domain is where the report says, persistent, and gone from the source.
check_item() {
    local name=$1 want=$2 it dest host state
    it=$(vk_mig_out ".domains[] | select(.domain == \"$name\")")
    [ -n "$it" ] || vk_fail "the report has no line for '$name'"
    [ "$(echo "$it" | jq -r .outcome)" = "$want" ] ||
        vk_fail "'$name' outcome is $(echo "$it" | jq -r .outcome), expected $want: $it"
    [ "$want" = migrated ] || return 0
    dest=$(echo "$it" | jq -r .destination)
    host=$(host_of "$dest")
    state=running
    [ "$(echo "$it" | jq -r .was_running)" = true ] || state="shut off"
    [ "$(vk_mig_state "$host" "$name")" = "$state" ] ||
        vk_fail "'$name' is '$(vk_mig_state "$host" "$name")' on $host, expected $state"
    [ "$(vk_mig_persistent "$host" "$name")" = yes ] || vk_fail "'$name' is not persistent on $host"
    [ "$(vk_mig_state src "$name")" = absent ] || vk_fail "'$name' is still on the source"
    echo "$it" | jq -e '.seconds > 0' >/dev/null || vk_fail "'$name' has no duration"
    if [ "$state" = running ]; then
        echo "$it" | jq -e '.downtime_ms >= 0' >/dev/null || vk_fail "'$name' has no downtime"
        vk_mig_check "$host" "$name" 0xcd 1M 1M
    fi
}

# --- three running domains and a stopped one, two destinations --------------
for d in e1:128 e2:96 e3:64 e4:64; do
    vk_mig_domain src "${d%%:*}" "${d#*:}" 16M
done
for d in e1 e2 e3; do
    vk_mig_virsh src start "$d" >/dev/null
    vk_mig_write src "$d" 0xcd 1M 1M
done
vk_mig_cmd 0 evacuate --to "$VK_MIG_DST,$VK_MIG_DST2" --parallel 2 --include-stopped \
    --migrate-uri tcp://127.0.0.1 --unsafe
[ "$(vk_mig_out '.domains | length')" = 4 ] || vk_fail "the report does not list four domains"
[ "$(vk_mig_out .failed)" = 0 ] || vk_fail "the report counts failures"
for d in e1 e2 e3 e4; do
    check_item "$d" migrated
done
[ "$(vk_mig_virsh src list --all --name | grep -c .)" = 0 ] || vk_fail "the source is not empty"
# Biggest first: e1 (128 MiB) is placed before the others.
[ "$(vk_mig_out '.domains[0].domain')" = e1 ] || vk_fail "e1 was not placed first"
[ "$(vk_mig_sql "SELECT count(*) FROM jobs WHERE kind = 'migrate' AND state = 'succeeded'")" = 4 ] ||
    vk_fail "the catalog does not have four succeeded migrate jobs"
[ "$(vk_mig_sql "SELECT count(*) FROM jobs WHERE kind = 'migrate' AND downtime_ms >= 0")" = 3 ] ||
    vk_fail "the catalog does not have the downtime of the three live migrations"

# --- one failing domain does not stop the others ----------------------------
for d in f1 f2 f3; do
    vk_mig_domain src "$d" 64 16M
    vk_mig_virsh src start "$d" >/dev/null
    vk_mig_write src "$d" 0xcd 1M 1M
done
# f2's name is taken on the destination: it fails its pre-checks there.
sed -e '/<uuid>/d' "$VK_SCRATCH/f2.xml" >"$VK_SCRATCH/f2-taken.xml"
vk_mig_virsh dst define "$VK_SCRATCH/f2-taken.xml" >/dev/null
vk_mig_cmd 1 evacuate --to "$VK_MIG_DST" --parallel 2 --migrate-uri tcp://127.0.0.1 --unsafe
[ "$(vk_mig_out '.domains | length')" = 3 ] || vk_fail "the report does not list three domains"
[ "$(vk_mig_out .failed)" = 1 ] || vk_fail "the report does not count one failure"
check_item f1 migrated
check_item f3 migrated
check_item f2 failed
vk_mig_out '.domains[] | select(.domain == "f2") | .error' | grep -q "a domain named 'f2' already exists" ||
    vk_fail "the failure of f2 does not say why"
[ "$(vk_mig_state src f2)" = running ] || vk_fail "f2 does not run on the source any more"
vk_mig_check src f2 0xcd 1M 1M

# The text report: one line per domain, with outcome, duration, downtime and
# destination.
vk_mig_domain src g1 64 16M
vk_mig_virsh src start g1 >/dev/null
"$VK_BIN" --config "$VK_MIG_CONFIG" --catalog "$VK_MIG_CATALOG" -c "$VK_MIG_SRC" evacuate \
    --to "$VK_MIG_DST2" --migrate-uri tcp://127.0.0.1 --unsafe >"$VK_SCRATCH/report.txt" 2>&1 ||
    vk_fail "the text evacuation failed: $(cat "$VK_SCRATCH/report.txt")"
grep -Eq '^DOMAIN +OUTCOME +DURATION +DOWNTIME' "$VK_SCRATCH/report.txt" || vk_fail "no report header"
grep -Eq "^g1 +migrated +[0-9.]+s +[0-9]+ ms +.*host-dst2" "$VK_SCRATCH/report.txt" ||
    vk_fail "no report line for g1: $(cat "$VK_SCRATCH/report.txt")"
# f2, left on the source, moves now: its name is free on dst2.
grep -Eq "^f2 +migrated " "$VK_SCRATCH/report.txt" || vk_fail "f2 did not move to the free destination"
grep -q '^2 domains, 0 failed' "$VK_SCRATCH/report.txt" || vk_fail "wrong report summary"
vk_log "PASS"
