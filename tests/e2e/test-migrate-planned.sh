#!/usr/bin/env bash
# virtkeep - planned (cold) moves through backups: `migrate --planned`.
#
# The source is the system libvirtd (qemu:///system), the destination a
# session libvirtd run as $VK_MIG_USER (tests/lib/migrate-lib.sh) with a dir
# pool "default": two daemons, two "hosts" on one machine.  (Both sides as
# session daemons of another user would not do: a pull-mode backup needs a
# run directory that QEMU's user can write, and the backup engine gives it
# to QEMU's user only for a system daemon; a move between two session
# daemons, virtkeep run as their user: test-backup-session.sh.)
#
# 1. A move: guest data written before it (some of it after an earlier full
#    backup, so the move's backups are incrementals) is on the destination
#    byte for byte (qemu-img compare of the source image at shutdown with the
#    uploaded volume, and reads in the running guest); the domain runs there,
#    persistent, and is gone from the source (its image kept); the catalog job
#    (migrate-planned) has the downtime the JSON reports, > 0.
# 2. A dry run against a missing pool reports the pool check, and no CPU check.
# 3. A guest that does not shut down in time, without --force: the move
#    stops there, the domain still runs on the source.
# 4. A failure injected at the restore step (VIRTKEEP_TEST_FAIL_STEP), and one
#    at the verify step (after the upload): the domain runs on the source
#    again, nothing on the destination has its name, no volume is left, the
#    job is failed with the step named.
. "$abs_top_srcdir/tests/lib/harness.sh"
. "$abs_top_srcdir/tests/lib/migrate-lib.sh"

vk_start_libvirtd
vk_require_cmd jq python3 qemu-img qemu-io runuser timeout
# The destination runs QEMU as $VK_MIG_USER: its KVM access decides the
# domain type for both sides (TCG runs everywhere).
vk_mig_user
vk_mig_daemon dst
VK_MIG_SRC=$VK_LIBVIRT_URI
VK_MIG_DST=$(vk_mig_uri dst)
VK_MIG_CATALOG=$VK_SCRATCH/catalog.db
VK_MIG_CONFIG=$VK_SCRATCH/virtkeep.conf
VK_MIG_N=0
pooldir=$VK_SCRATCH/host-dst/pool
mkdir -p "$pooldir" "$VK_SCRATCH/backups"
chown "$VK_MIG_USER:" "$pooldir"
vk_mig_virsh dst pool-define-as default dir --target "$pooldir" >/dev/null
vk_mig_virsh dst pool-start default >/dev/null

a=pl$$a
b=pl$$b
cat >"$VK_MIG_CONFIG" <<EOF
[catalog]
path = $VK_MIG_CATALOG

[target main]
url = file://$VK_SCRATCH/backups

[policy move]
targets = main

[domain $a]
policy = move
EOF

src_state() {
    "${VK_VIRSH[@]}" domstate "$1" 2>/dev/null || echo absent
}

# The source has nothing left of NAME, and the destination nothing at all.
dest_clean() {
    local name=$1
    [ "$(vk_mig_state dst "$name")" = absent ] || vk_fail "'$name' exists on the destination"
    ! vk_mig_virsh dst vol-list default | grep -q "$name" ||
        vk_fail "a volume of '$name' was left in the destination pool"
    ! ls "$pooldir" | grep -q "$name" || vk_fail "files of '$name' left in the pool: $(ls "$pooldir")"
}

# --- 1. the move -------------------------------------------------------------
vk_domain_create "$a" 64M 1
vk_domain_start "$a"
vk_domain_write "$a" vda 0xcd 1M 1M
"$VK_BIN" --config "$VK_MIG_CONFIG" --catalog "$VK_MIG_CATALOG" -c "$VK_MIG_SRC" backup "$a" \
    --level full --json >"$VK_SCRATCH/full.json" 2>&1 || vk_fail "the first backup of '$a' failed"
vk_domain_write "$a" vda 0x5a 8M 512k
vk_domain_write "$a" vda 0x77 20M 2M
# No OS answers ACPI: the shutdown times out and --force destroys it.
vk_migrate 0 "$a" --to "$VK_MIG_DST" --planned --shutdown-timeout 2 --force
[ "$(vk_mig_out .ok)" = true ] || vk_fail "the planned move of '$a' did not report ok"
[ "$(vk_mig_out .planned)" = true ] || vk_fail "the result does not say planned"
[ "$(vk_mig_out '.backups | length')" = 2 ] || vk_fail "the move did not take two backups"
[ "$(vk_mig_out '[.checks[] | select(.check == "cpu")] | length')" = 0 ] ||
    vk_fail "a planned move checked the CPU"
[ "$(vk_mig_out '[.checks[] | select(.status != "pass")] | length')" = 0 ] ||
    vk_fail "a pre-check of '$a' did not pass: $(cat "$VK_MIG_OUT")"
grep -q "step 5/9: restore" "$VK_MIG_ERR" || vk_fail "no progress lines for the steps"
grep -q "destroying it (--force)" "$VK_MIG_ERR" || vk_fail "--force did not destroy the domain"
for id in $(vk_mig_out '.backups[]'); do
    [ "$(vk_mig_sql "SELECT level FROM backups WHERE id = '$id'")" = inc ] ||
        vk_fail "backup $id of the move is not an incremental"
done
[ "$(vk_mig_state dst "$a")" = running ] || vk_fail "'$a' does not run on the destination"
[ "$(vk_mig_persistent dst "$a")" = yes ] || vk_fail "'$a' is not persistent on the destination"
[ "$(src_state "$a")" = absent ] || vk_fail "'$a' is still defined on the source"
srcimg=$VK_SCRATCH/images/$a-vda.qcow2
vol=$(vk_mig_out '.volumes[0]')
[ -f "$srcimg" ] || vk_fail "the source image of '$a' was not kept"
[ "$(dirname "$vol")" = "$pooldir" ] || vk_fail "the volume '$vol' is not in the pool"
vk_mig_virsh dst domblklist "$a" | grep -q "vda *$vol" || vk_fail "'$a' does not use '$vol'"
qemu-img compare -U -f qcow2 -F qcow2 "$srcimg" "$vol" >"$VK_SCRATCH/compare.out" 2>&1 ||
    vk_fail "the destination volume differs from the source disk: $(cat "$VK_SCRATCH/compare.out")"
vk_mig_check dst "$a" 0xcd 1M 1M
vk_mig_check dst "$a" 0x5a 8M 512k
vk_mig_check dst "$a" 0x77 20M 2M
vk_mig_check dst "$a" 0 4M 1M
job=$(vk_mig_out .job)
down=$(vk_mig_out .downtime_ms)
[ "$down" != null ] && [ "$down" -gt 0 ] || vk_fail "the move measured no downtime: $down"
row=$(vk_mig_sql "SELECT kind, domain, target, state, downtime_ms FROM jobs WHERE id = $job")
[ "$row" = "migrate-planned|$a|$VK_MIG_DST|succeeded|$down" ] || vk_fail "catalog job $job is '$row'"

# --- 2. dry run: the pool is checked -------------------------------------------
vk_domain_create "$b" 64M 1
vk_domain_start "$b"
vk_domain_write "$b" vda 0xab 2M 1M
vk_migrate 1 "$b" --to "$VK_MIG_DST" --planned --via main --dest-pool nope --dry-run
vk_mig_out '.checks[] | select(.status == "fail") | .check' | grep -qx pool ||
    vk_fail "the dry run did not fail the pool check: $(cat "$VK_MIG_OUT")"
[ "$(vk_mig_out .job)" = null ] || vk_fail "a dry run recorded a job"
[ "$(src_state "$b")" = running ] || vk_fail "the dry run touched '$b'"

# --- 3. no shutdown in time without --force: nothing moves --------------------
vk_migrate 1 "$b" --to "$VK_MIG_DST" --planned --via main --shutdown-timeout 1
[ "$(vk_mig_out .failed_step)" = shutdown ] || vk_fail "failed_step is $(vk_mig_out .failed_step)"
[ "$(src_state "$b")" = running ] || vk_fail "'$b' does not run on the source after the timeout"
dest_clean "$b"
grep -q "did not shut down within 1 s.*still runs on the source.*--force" "$VK_MIG_ERR" ||
    vk_fail "the error does not say what to do: $(cat "$VK_MIG_ERR")"

# --- 4. failures injected at restore and after the upload ---------------------
for step in restore verify; do
    VIRTKEEP_TEST_FAIL_STEP=$step vk_migrate 1 "$b" --to "$VK_MIG_DST" --planned --via main \
        --shutdown-timeout 1 --force
    [ "$(vk_mig_out .failed_step)" = "$step" ] || vk_fail "failed_step is $(vk_mig_out .failed_step)"
    [ "$(vk_mig_out .source_running)" = true ] || vk_fail "the result does not say it runs"
    [ "$(src_state "$b")" = running ] || vk_fail "'$b' does not run on the source after $step"
    dest_clean "$b"
    grep -q "domain '$b'.*step '$step'.*runs on the source again" "$VK_MIG_ERR" ||
        vk_fail "the error does not name the domain, the step and the state: $(cat "$VK_MIG_ERR")"
    job=$(vk_mig_out .job)
    row=$(vk_mig_sql "SELECT kind, state, error LIKE '%step ''$step''%' FROM jobs WHERE id = $job")
    [ "$row" = "migrate-planned|failed|1" ] || vk_fail "catalog job $job is '$row'"
done
[ "$(vk_mig_out '.volumes | length')" = 1 ] || vk_fail "the verify run uploaded no volume"
vk_log "PASS"
