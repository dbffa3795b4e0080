#!/bin/bash
# The packaging files: contrib/virtkeep.conf.example passes
# `virtkeep config check` (with the secret files it names created 0600 in a
# temporary directory), the generated systemd unit has its paths filled
# in, and both man pages format without a groff warning.
. "$abs_top_srcdir/tests/lib/harness.sh"

vk_require_cmd groff
VK_BIN=$abs_top_builddir/src/virtkeep
[ -x "$VK_BIN" ] || vk_fail "'$VK_BIN' is not built"

# ---- the example configuration --------------------------------------------
example=$abs_top_srcdir/contrib/virtkeep.conf.example
etc=$VK_SCRATCH/etc
mkdir -p "$etc"
for f in api-token id_ed25519 s3-secret known_hosts; do
    echo secret >"$etc/$f"
    chmod 600 "$etc/$f"
done
sed "s|/etc/virtkeep/|$etc/|g" "$example" >"$VK_SCRATCH/virtkeep.conf"
grep -q "^\[daemon\]" "$VK_SCRATCH/virtkeep.conf" || vk_fail "the example has no [daemon]"
for s in catalog daemon target policy domain; do
    grep -q "^\[$s" "$example" || vk_fail "the example has no [$s] section"
done
"$VK_BIN" config check --json "$VK_SCRATCH/virtkeep.conf" >"$VK_SCRATCH/check.json" ||
    vk_fail "the example does not pass config check: $(cat "$VK_SCRATCH/check.json")"
grep -q '"valid": *true' "$VK_SCRATCH/check.json" || vk_fail "config check: not valid"

# ---- the systemd unit --------------------------------------------------------
unit=$abs_top_builddir/contrib/virtkeepd.service
make -C "$abs_top_builddir" contrib/virtkeepd.service >/dev/null || vk_fail "cannot make the unit"
grep -q "@" "$unit" && vk_fail "the unit has unsubstituted @...@ values"
sbindir=$(sed -n 's/^sbindir = //p' "$abs_top_builddir/Makefile")
prefix=$(sed -n 's/^prefix = //p' "$abs_top_builddir/Makefile")
exec_prefix=$(sed -n 's/^exec_prefix = //p' "$abs_top_builddir/Makefile")
exec_prefix=${exec_prefix//\$\{prefix\}/$prefix}
sbindir=${sbindir//\$\{exec_prefix\}/$exec_prefix}
for line in "Type=simple" "ExecStart=$sbindir/virtkeepd --config /etc/virtkeep/virtkeep.conf" \
    "RuntimeDirectory=virtkeep" "KillMode=mixed" "Restart=on-failure" \
    "SyslogIdentifier=virtkeepd" "After=network-online.target libvirtd.service"; do
    grep -qF "$line" "$unit" || vk_fail "the unit lacks '$line'"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$unit" 2>&1 | grep -v "virtkeepd.*No such file\|is not executable" |
        grep -i "error\|unknown" && vk_fail "systemd-analyze finds problems in the unit"
fi

# ---- man pages -----------------------------------------------------------------
for page in "$abs_top_srcdir/docs/virtkeep.1" "$abs_top_srcdir/docs/virtkeepd.8"; do
    out=$(groff -ww -z -man -Tutf8 "$page" 2>&1)
    [ -z "$out" ] || vk_fail "groff warns about $page: $out"
done
grep -q "^\.SH SIGNALS" "$abs_top_srcdir/docs/virtkeepd.8" || vk_fail "virtkeepd.8 has no SIGNALS"
grep -q "virtkeep_rpo_exposure_seconds" "$abs_top_srcdir/docs/virtkeepd.8" ||
    vk_fail "virtkeepd.8 does not list the metrics"
vk_log "packaging files are valid"
