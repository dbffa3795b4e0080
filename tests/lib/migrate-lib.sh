# shellcheck shell=bash
# virtkeep - helpers for the migration end-to-end tests (test-migrate*.sh,
# test-evacuate.sh).  Source it after tests/lib/harness.sh:
#
#     . "$abs_top_srcdir/tests/lib/harness.sh"
#     . "$abs_top_srcdir/tests/lib/migrate-lib.sh"
#     vk_mig_setup
#
# Live migration on one machine (DESIGN.md): two session libvirtds run as the
# unprivileged user $VK_MIG_USER (created if missing), each with its own
# XDG_RUNTIME_DIR / XDG_CONFIG_HOME / XDG_CACHE_HOME / HOME and its own
# host_uuid, so that libvirt treats them as two hosts.  Their URIs are
# $VK_MIG_SRC and $VK_MIG_DST (and $VK_MIG_DST2 after vk_mig_daemon dst2).
# QEMU's migration stream goes over TCP to 127.0.0.1 (--migrate-uri), and
# shared storage on one file system needs --unsafe.  Everything started here
# (daemons, domains, QEMU processes) is stopped on exit.

VK_BIN=$abs_top_builddir/src/virtkeep
VK_MIG_USER=${VK_MIG_USER:-vkmig}
VK_MIG_TIMEOUT=${VK_MIG_TIMEOUT:-120}

# vk_mig_user: create the unprivileged user if it is missing.
vk_mig_user() {
    if ! id "$VK_MIG_USER" >/dev/null 2>&1; then
        vk_require_cmd useradd
        useradd --system --user-group --no-create-home --shell /usr/sbin/nologin \
            "$VK_MIG_USER" 2>/dev/null || id "$VK_MIG_USER" >/dev/null 2>&1 ||
            vk_fail "cannot create user '$VK_MIG_USER'"
    fi
    # Session QEMU runs as this user: /dev/kvm must be open to it, else TCG.
    if [ -c /dev/kvm ] && runuser -u "$VK_MIG_USER" -- test -r /dev/kvm -a -w /dev/kvm; then
        VK_DOMAIN_TYPE=kvm
    elif [ -c /dev/kvm ] && chmod 666 /dev/kvm 2>/dev/null &&
        runuser -u "$VK_MIG_USER" -- test -r /dev/kvm -a -w /dev/kvm; then
        VK_DOMAIN_TYPE=kvm
    else
        VK_DOMAIN_TYPE=qemu
        vk_log "note: /dev/kvm is not usable by '$VK_MIG_USER', domains use TCG"
    fi
    export VK_DOMAIN_TYPE
}

# vk_mig_run CMD...: run CMD as the migration user in daemon NAME's
# environment ($VK_MIG_ENV_NAME set by vk_mig_daemon).
vk_mig_as() {
    local name=$1 base
    shift
    base=$VK_SCRATCH/host-$name
    runuser -u "$VK_MIG_USER" -- env HOME="$base/home" XDG_RUNTIME_DIR="$base/run" \
        XDG_CONFIG_HOME="$base/config" XDG_CACHE_HOME="$base/cache" "$@"
}

vk_mig_uri() {
    echo "qemu+unix:///session?socket=$VK_SCRATCH/host-$1/run/libvirt/libvirt-sock"
}

vk_mig_answers() {
    virsh -q -c "$(vk_mig_uri "$1")" version >/dev/null 2>&1
}

# vk_mig_daemon NAME...: start session libvirtd "hosts", all at once, and
# wait until each answers.  A fresh daemon probes QEMU's capabilities for
# seconds; the probe is cached in $VK_TEST_CACHE/migrate-qemu-caps and
# copied into each new host (libvirt re-probes when QEMU or libvirtd
# changed, so a stale copy costs only time).
vk_mig_daemon() {
    local name base uuid port caps=$VK_TEST_CACHE/migrate-qemu-caps
    for name in "$@"; do
        base=$VK_SCRATCH/host-$name
        mkdir -p "$base/home" "$base/run" "$base/config/libvirt" "$base/cache/libvirt/qemu/cache" \
            "$base/images"
        chmod 0700 "$base/run"
        if [ -d "$caps" ]; then
            cp -r "$caps" "$base/cache/libvirt/qemu/cache/capabilities" 2>/dev/null || true
        fi
        uuid=$(cat /proc/sys/kernel/random/uuid)
        printf 'host_uuid = "%s"\n' "$uuid" >"$base/config/libvirt/libvirtd.conf"
        # Each "host" takes incoming migrations (and NBD disk copies) on its
        # own ports: on one machine two daemons would both pick 49152.
        port=$((50000 + (RANDOM % 900) * 16))
        printf 'migration_port_min = %d\nmigration_port_max = %d\n' "$port" $((port + 15)) \
            >"$base/config/libvirt/qemu.conf"
        chown -R "$VK_MIG_USER:" "$base"
        chmod 0711 "$base"
        vk_mig_as "$name" libvirtd --daemon || vk_fail "cannot start the session libvirtd '$name'"
        vk_on_exit "vk_mig_daemon_stop '$name'"
    done
    for name in "$@"; do
        vk_wait_for 60 vk_mig_answers "$name" || vk_fail "session libvirtd '$name' does not answer"
    done
    base=$VK_SCRATCH/host-$1/cache/libvirt/qemu/cache/capabilities
    if [ ! -d "$caps" ] && [ -d "$base" ] && mkdir -p "$VK_TEST_CACHE" 2>/dev/null; then
        cp -r "$base" "$caps.$$" 2>/dev/null && mv -T "$caps.$$" "$caps" 2>/dev/null ||
            rm -rf "$caps.$$"
    fi
}

# The processes of the migration user that run in host NAME's environment:
# libvirtd, the virtlogd it spawned, QEMU.
vk_mig_pids() {
    local base=$VK_SCRATCH/host-$1 pid
    for pid in $(pgrep -u "$VK_MIG_USER" 2>/dev/null); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$base/run"; then
            echo "$pid"
        fi
    done
}

# Stop every domain of host NAME, undefine them, stop the daemon and the
# processes it spawned.
vk_mig_daemon_stop() {
    local name=$1 uri dom pids
    uri=$(vk_mig_uri "$name")
    for dom in $(virsh -q -c "$uri" list --all --name 2>/dev/null); do
        virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
        virsh -q -c "$uri" undefine "$dom" >/dev/null 2>&1 || true
    done
    pids=$(vk_mig_pids "$name")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    # shellcheck disable=SC2086,SC2016
    vk_wait_for 10 bash -c 'for p; do kill -0 "$p" 2>/dev/null && exit 1; done; exit 0' _ $pids ||
        true
    pids=$(vk_mig_pids "$name")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
}

# vk_mig_setup [NAME...]: user, the hosts "src", "dst" (and NAME...),
# config and catalog.
vk_mig_setup() {
    vk_require_root_or_skip
    vk_require_cmd virsh libvirtd virtlogd qemu-img qemu-io runuser jq timeout
    command -v qemu-system-x86_64 >/dev/null 2>&1 || vk_skip "qemu-system-x86_64 is not installed"
    export PATH=$PATH:/usr/sbin:/sbin
    [ -x "$VK_BIN" ] || vk_fail "'$VK_BIN' is not built"
    "$VK_BIN" help migrate >/dev/null 2>&1 || vk_fail "virtkeep has no 'migrate' command"
    vk_mig_user
    vk_mig_daemon src dst "$@"
    VK_MIG_SRC=$(vk_mig_uri src)
    VK_MIG_DST=$(vk_mig_uri dst)
    VK_MIG_CATALOG=$VK_SCRATCH/catalog.db
    VK_MIG_CONFIG=$VK_SCRATCH/virtkeep.conf
    printf '[catalog]\npath = %s\n' "$VK_MIG_CATALOG" >"$VK_MIG_CONFIG"
    VK_MIG_N=0
}

vk_mig_virsh() {
    local name=$1
    shift
    virsh -q -c "$(vk_mig_uri "$name")" "$@"
}

# vk_mig_domain HOST NAME [MEMORY_MIB] [DISKSIZE] [IMAGEDIR]: define a domain
# with one blank qcow2 disk vda on HOST (images in IMAGEDIR, default the
# shared $VK_SCRATCH/images).  It is not started.
vk_mig_domain() {
    local host=$1 name=$2 mem=${3:-64} size=${4:-64M} dir=${5:-$VK_SCRATCH/images}
    mkdir -p "$dir"
    chown "$VK_MIG_USER:" "$dir"
    [ -f "$dir/$name-vda.qcow2" ] ||
        runuser -u "$VK_MIG_USER" -- qemu-img create -q -f qcow2 "$dir/$name-vda.qcow2" "$size"
    cat >"$VK_SCRATCH/$name.xml" <<EOF
<domain type='$VK_DOMAIN_TYPE'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='$dir/$name-vda.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    vk_mig_virsh "$host" define "$VK_SCRATCH/$name.xml" >/dev/null
}

vk_mig_log() {
    echo "$VK_SCRATCH/host-$1/cache/libvirt/qemu/log/$2.log"
}

# vk_mig_io HOST NAME "QEMU-IO COMMAND": run qemu-io on disk vda of a running
# domain through HMP.  qemu-io prints its result on QEMU's stdout (the
# domain log): wait until the log has one more result line and print it.
vk_mig_io() {
    local host=$1 name=$2 cmd=$3 log before out
    log=$(vk_mig_log "$host" "$name")
    before=$(grep -Ec '^(wrote|read) |Pattern verification failed' "$log" 2>/dev/null || true)
    out=$(vk_mig_virsh "$host" qemu-monitor-command "$name" --hmp \
        "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"$cmd\"" 2>&1) ||
        vk_fail "qemu-io '$cmd' on '$name' ($host) failed: $out"
    vk_wait_for 10 bash -c "[ \$(grep -Ec '^(wrote|read) |Pattern verification failed' '$log') -gt $before ]" ||
        vk_fail "qemu-io '$cmd' on '$name' ($host) reported nothing in '$log'"
    grep -E '^(wrote|read) |Pattern verification failed' "$log" | tail -n 1
}

# vk_mig_write HOST NAME PATTERN OFFSET LEN
vk_mig_write() {
    local out
    out=$(vk_mig_io "$1" "$2" "write -P $3 $4 $5")
    case $out in
    wrote*) ;;
    *) vk_fail "write to '$2' on $1 failed: $out" ;;
    esac
}

# vk_mig_check HOST NAME PATTERN OFFSET LEN: the running guest reads PATTERN.
vk_mig_check() {
    local out
    out=$(vk_mig_io "$1" "$2" "read -P $3 $4 $5")
    case $out in
    read*) ;;
    *) vk_fail "'$2' on $1 does not read back $3 at $4+$5: $out" ;;
    esac
}

# vk_mig_state HOST NAME: the domain's state, or "absent".
vk_mig_state() {
    vk_mig_virsh "$1" domstate "$2" 2>/dev/null || echo absent
}

vk_mig_persistent() {
    vk_mig_virsh "$1" dominfo "$2" 2>/dev/null | awk '/^Persistent:/ {print $2}'
}

# vk_migrate WANT_RC ARGS...: virtkeep migrate ARGS --json; output in
# $VK_MIG_OUT (stdout) and $VK_MIG_ERR (stderr).  WANT_RC "fail" is any
# non-zero status.
vk_migrate() {
    vk_mig_cmd "$1" migrate "${@:2}"
}

vk_mig_cmd() {
    local want=$1 rc=0
    shift
    VK_MIG_N=$((VK_MIG_N + 1))
    VK_MIG_OUT=$VK_SCRATCH/$1-$VK_MIG_N.json
    VK_MIG_ERR=$VK_SCRATCH/$1-$VK_MIG_N.err
    timeout "$VK_MIG_TIMEOUT" "$VK_BIN" --config "$VK_MIG_CONFIG" --catalog "$VK_MIG_CATALOG" \
        -c "$VK_MIG_SRC" "$@" --json >"$VK_MIG_OUT" 2>"$VK_MIG_ERR" || rc=$?
    if { [ "$want" = fail ] && [ "$rc" = 0 ]; } || { [ "$want" != fail ] && [ "$rc" != "$want" ]; }; then
        vk_log "virtkeep $*: exit status $rc, expected $want"
        sed 's/^/  stdout: /' "$VK_MIG_OUT" >&2
        sed 's/^/  stderr: /' "$VK_MIG_ERR" >&2
        vk_fail "unexpected exit status of virtkeep $1"
    fi
    jq -e . "$VK_MIG_OUT" >/dev/null || vk_fail "virtkeep $1 printed no valid JSON"
}

# vk_mig_out FILTER: a value of the last command's JSON (jq -r).
vk_mig_out() {
    jq -r "$1" "$VK_MIG_OUT"
}

# vk_mig_job_sql SQL: a query on the test catalog (python3, no sqlite3 CLI).
vk_mig_sql() {
    python3 -c 'import sqlite3,sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))' "$VK_MIG_CATALOG" "$1"
}
