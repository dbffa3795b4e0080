#!/bin/bash
# Smoke test for libvirt + QEMU + libnbd: start a throwaway domain, write a
# known pattern into its disk, begin a pull-mode backup and read the disk back
# through the NBD export with libnbd (smoke-nbd), then abort the job.
. "${abs_top_srcdir:?run this test through make check}/tests/lib/harness.sh"

vk_start_libvirtd
domain=vk-smoke-libvirt-$$-$RANDOM
vk_domain_create "$domain" 256M 1
vk_domain_start "$domain"

pattern=$((0xcd))
offset=$((64 << 20))
len=$((1 << 20))
zero_offset=$((128 << 20))
vk_domain_write "$domain" vda "$pattern" "$offset" "$len"

socket=$(vk_qemu_dir)/nbd.sock
vk_backup_begin_pull "$domain" vda "$socket"
vk_on_exit "vk_backup_abort '$domain' 2>/dev/null || true"

"$abs_top_builddir/tests/e2e/smoke-nbd" "$socket" vda "$pattern" "$offset" "$len" "$zero_offset"

vk_backup_abort "$domain"
vk_backup_job_ended "$domain" || vk_fail "the backup job of '$domain' is still running"
vk_log "PASS"
