#!/usr/bin/env bash
# virtkeep - live migration between two session libvirtds on one machine:
# with shared storage (same path, --unsafe) and with --copy-storage (the
# destination image at another path, created by the pre-checks).  Guest data
# written before the move reads back identically on the destination; the
# domain is persistent there and gone from the source; the catalog has the
# job with its downtime.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"
vk_mig_setup

# The destination must see what the source wrote: check PATTERN at OFFSET.
check_moved() {
    local name=$1
    [ "$(vk_mig_out .ok)" = true ] || vk_fail "migration of '$name' did not report ok"
    [ "$(vk_mig_state dst "$name")" = running ] ||
        vk_fail "'$name' does not run on the destination: $(vk_mig_state dst "$name")"
    [ "$(vk_mig_persistent dst "$name")" = yes ] || vk_fail "'$name' is not persistent on the destination"
    [ "$(vk_mig_state src "$name")" = absent ] || vk_fail "'$name' is still defined on the source"
    vk_mig_check dst "$name" 0xcd 1M 1M
    vk_mig_check dst "$name" 0x5a 8M 512k
    vk_mig_check dst "$name" 0 4M 1M
}

# A migrate job in the catalog, succeeded, with the downtime the JSON gave.
check_job() {
    local name=$1 job down row
    job=$(vk_mig_out .job)
    down=$(vk_mig_out .downtime_ms)
    [ "$job" != null ] || vk_fail "migration of '$name' recorded no catalog job"
    if [ "$down" = null ] || [ "$down" -lt 0 ]; then
        vk_fail "migration of '$name' measured no downtime"
    fi
    row=$(vk_mig_sql "SELECT kind, domain, target, state, downtime_ms FROM jobs WHERE id = $job")
    [ "$row" = "migrate|$name|$VK_MIG_DST|succeeded|$down" ] ||
        vk_fail "catalog job $job of '$name' is '$row'"
}

# --- shared storage: same image path on both "hosts" -----------------------
vk_mig_domain src shared 64 64M
vk_mig_virsh src start shared >/dev/null
vk_mig_write src shared 0xcd 1M 1M
vk_mig_write src shared 0x5a 8M 512k
vk_migrate 0 shared --to "$VK_MIG_DST" --migrate-uri tcp://127.0.0.1 --unsafe --max-downtime 500
check_moved shared
check_job shared
[ "$(vk_mig_out .live)" = true ] || vk_fail "the migration of 'shared' was not live"
[ "$(vk_mig_out '[.checks[] | select(.status != "pass")] | length')" = 0 ] ||
    vk_fail "a pre-check of 'shared' did not pass: $(cat "$VK_MIG_OUT")"
vk_mig_out '.checks[].check' | grep -qx 'storage vda' || vk_fail "no storage check for vda"

# --- --copy-storage: the destination image at another path -----------------
dstdir=$VK_SCRATCH/host-dst/images
srcimg=$VK_SCRATCH/srcimages/copy-vda.qcow2
vk_mig_domain src copy 64 64M "$VK_SCRATCH/srcimages"
vk_mig_virsh src start copy >/dev/null
vk_mig_write src copy 0xcd 1M 1M
vk_mig_write src copy 0x5a 8M 512k
[ ! -e "$dstdir/copy-vda.qcow2" ] || vk_fail "the destination image exists before the test"
vk_migrate 0 copy --to "$VK_MIG_DST" --migrate-uri tcp://127.0.0.1 --copy-storage \
    --dest-dir "$dstdir"
check_moved copy
check_job copy
vk_mig_out '.checks[] | select(.check == "storage vda") | .detail' | grep -q "created '$dstdir/copy-vda.qcow2'" ||
    vk_fail "the pre-checks did not say they created the destination image: $(cat "$VK_MIG_OUT")"
vk_mig_virsh dst domblklist copy | grep -q "vda *$dstdir/copy-vda.qcow2" ||
    vk_fail "'copy' on the destination does not use '$dstdir/copy-vda.qcow2'"
vk_mig_virsh dst dumpxml --inactive copy | grep -q "$dstdir/copy-vda.qcow2" ||
    vk_fail "the persistent definition of 'copy' does not use the destination image"
# Stopped, the destination image itself holds the data (and the source's too).
vk_mig_virsh dst destroy copy >/dev/null
for img in "$dstdir/copy-vda.qcow2" "$srcimg"; do
    out=$(qemu-io -f qcow2 -r -c 'read -P 0xcd 1M 1M' -c 'read -P 0x5a 8M 512k' \
        -c 'read -P 0 4M 1M' "$img")
    ! echo "$out" | grep -q 'Pattern verification failed' || vk_fail "'$img' differs: $out"
    [ "$(echo "$out" | grep -c '^read ')" = 3 ] || vk_fail "cannot read '$img': $out"
done
qemu-img compare -q "$srcimg" "$dstdir/copy-vda.qcow2" ||
    vk_fail "the destination image differs from the source image"

[ "$(vk_mig_sql "SELECT count(*) FROM jobs WHERE kind = 'migrate' AND state = 'succeeded'")" = 2 ] ||
    vk_fail "the catalog does not have two succeeded migrate jobs"
vk_log "PASS"
