# shellcheck shell=bash
# virtkeep - end-to-end test harness.  Source it from a bash test:
#
#     . "$abs_top_srcdir/tests/lib/harness.sh"
#
# It gives every test a scratch directory ($VK_SCRATCH), a cleanup stack run on
# EXIT, INT and TERM (vk_on_exit "command"), and helpers that start the real
# services the tests need: libvirtd with QEMU and throwaway domains, an sshd on
# 127.0.0.1, an s3rver and a Ceph radosgw.  Everything a test starts is torn
# down when it exits, whether it passed or failed.
#
# Environment:
#   VIRTKEEP_SKIP_E2E=1     every end-to-end test exits 77 (make distcheck)
#   VIRTKEEP_TEST_STRICT=1  a missing prerequisite fails instead of skipping
#   VIRTKEEP_TEST_KEEP=1    keep the scratch directory (for debugging)
#   VIRTKEEP_TEST_CACHE     where scripts/lib.sh installed s3rver
#                           (default /var/cache/virtkeep-test)
#   VK_RGW_ENV              the env file of a running radosgw to share
#                           (tests/lib/rgw.sh start DIR writes DIR/env)

if [ -z "${BASH_VERSION:-}" ]; then
    echo "harness.sh needs bash" >&2
    exit 1
fi

set -euo pipefail

VK_TEST_NAME=$(basename "${0%.sh}")

vk_log() {
    echo "$VK_TEST_NAME: $*" >&2
}

vk_fail() {
    vk_log "FAIL: $*"
    exit 1
}

# Skip the test (exit 77), or fail it under VIRTKEEP_TEST_STRICT=1 where
# every prerequisite is supposed to be installed.
vk_skip() {
    if [ "${VIRTKEEP_TEST_STRICT:-0}" = 1 ]; then
        vk_log "FAIL (VIRTKEEP_TEST_STRICT=1 forbids skipping): $*"
        exit 1
    fi
    vk_log "SKIP: $*"
    exit 77
}

if [ "${VIRTKEEP_SKIP_E2E:-0}" = 1 ]; then
    vk_log "SKIP: end-to-end tests are disabled (VIRTKEEP_SKIP_E2E=1)"
    exit 77
fi

: "${abs_top_srcdir:?run the test through make check, or set abs_top_srcdir}"
: "${abs_top_builddir:?run the test through make check, or set abs_top_builddir}"

VK_TEST_CACHE=${VIRTKEEP_TEST_CACHE:-/var/cache/virtkeep-test}
VK_LIBVIRT_URI=qemu:///system
VK_VIRSH=(virsh -q -c "$VK_LIBVIRT_URI")

# ---------------------------------------------------------------------------
# Cleanup stack.  Commands run in reverse order of registration; a failing
# command is reported and does not stop the others.

VK_CLEANUP=()

vk_on_exit() {
    VK_CLEANUP+=("$1")
}

vk_run_cleanup() {
    local i
    set +e
    for ((i = ${#VK_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${VK_CLEANUP[i]}" || vk_log "cleanup failed: ${VK_CLEANUP[i]}"
    done
    VK_CLEANUP=()
}

# While the stack runs, INT and TERM are ignored so that a second signal
# cannot cut the teardown short.
vk_trap_exit() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM
    vk_run_cleanup
    exit "$rc"
}

vk_trap_signal() {
    local rc=$1
    trap - EXIT
    trap '' INT TERM
    vk_log "interrupted"
    vk_run_cleanup
    exit "$rc"
}

trap vk_trap_exit EXIT
trap 'vk_trap_signal 130' INT
trap 'vk_trap_signal 143' TERM

# ---------------------------------------------------------------------------
# Scratch directory, one per test run.  It is searchable by others (0711) so
# that QEMU, running as libvirt-qemu, can reach files in subdirectories.

VK_SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/vk-$VK_TEST_NAME.XXXXXX")
chmod 0711 "$VK_SCRATCH"
if [ "${VIRTKEEP_TEST_KEEP:-0}" = 1 ]; then
    vk_on_exit "vk_log 'kept scratch directory $VK_SCRATCH'"
else
    vk_on_exit "rm -rf '$VK_SCRATCH'"
fi
export VK_SCRATCH

vk_require_root_or_skip() {
    [ "$(id -u)" = 0 ] || vk_skip "this test needs root"
}

vk_require_cmd() {
    local c
    for c in "$@"; do
        PATH=$PATH:/usr/sbin:/sbin command -v "$c" >/dev/null 2>&1 ||
            vk_skip "'$c' is not installed"
    done
}

# Wait up to $1 seconds until the command in "$@" succeeds.
vk_wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------
# Free TCP ports on 127.0.0.1.  A port is claimed with an atomic mkdir so that
# tests running in parallel never pick the same one; the claim is released on
# exit.  A port can still be taken by an unrelated program before the service
# binds it, so the start helpers retry with another port.

VK_PORT_DIR=${TMPDIR:-/tmp}/virtkeep-test-ports

vk_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# vk_free_port: set VK_PORT to a free port, claimed until the test exits.
# (It sets a variable rather than printing so that the claim is released by
# this shell's cleanup stack, not a subshell's.)
vk_free_port() {
    local port i
    mkdir -p "$VK_PORT_DIR"
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        vk_port_in_use "$port" && continue
        if mkdir "$VK_PORT_DIR/$port" 2>/dev/null; then
            vk_on_exit "rmdir '$VK_PORT_DIR/$port'"
            VK_PORT=$port
            return 0
        fi
    done
    vk_fail "cannot find a free TCP port on 127.0.0.1"
}

# Kill a background process and wait for it.
vk_kill() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    vk_wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# libvirtd (qemu:///system).  The daemon is shared by all tests and is left
# running; a lock keeps two tests from starting it at the same time.

vk_libvirtd_answers() {
    "${VK_VIRSH[@]}" version >/dev/null 2>&1
}

vk_kvm_usable() {
    [ -c /dev/kvm ] || return 1
    # QEMU runs as libvirt-qemu: /dev/kvm must be open to it.
    if id libvirt-qemu >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
        runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm
    else
        [ "$(stat -c %a /dev/kvm)" = 666 ]
    fi
}

vk_start_libvirtd() {
    vk_require_root_or_skip
    vk_require_cmd virsh libvirtd virtlogd qemu-img
    command -v qemu-system-x86_64 >/dev/null 2>&1 || vk_skip "qemu-system-x86_64 is not installed"
    export PATH=$PATH:/usr/sbin:/sbin
    if ! vk_libvirtd_answers; then
        (
            flock 9
            if ! vk_libvirtd_answers; then
                pgrep -x virtlogd >/dev/null || virtlogd -d
                pgrep -x libvirtd >/dev/null || libvirtd -d
                vk_wait_for 30 vk_libvirtd_answers
            fi
        ) 9>/run/virtkeep-test-libvirtd.lock || true
        vk_libvirtd_answers || vk_fail "libvirtd does not answer on $VK_LIBVIRT_URI"
    fi
    if vk_kvm_usable; then
        VK_DOMAIN_TYPE=kvm
    else
        VK_DOMAIN_TYPE=qemu
        vk_log "note: /dev/kvm is not usable by libvirt-qemu, domains use TCG"
    fi
    export VK_DOMAIN_TYPE
}

VK_DISK_LETTERS=abcdefghijklmnopqrstuvwxyz

# Disk index of a target name: vda -> 0, vdb -> 1, ...
vk_disk_index() {
    local letter=${1#vd} rest
    rest=${VK_DISK_LETTERS#*"$letter"}
    if [ ${#letter} != 1 ] || [ "$rest" = "$VK_DISK_LETTERS" ]; then
        vk_fail "bad disk name '$1'"
    fi
    echo $((25 - ${#rest}))
}

# Target name of a disk index: 0 -> vda, 1 -> vdb, ...
vk_disk_name() {
    echo "vd${VK_DISK_LETTERS:$1:1}"
}

# A directory QEMU (libvirt-qemu) can write: pull-mode sockets, scratch files.
vk_qemu_dir() {
    local dir=$VK_SCRATCH/qemu
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        if id libvirt-qemu >/dev/null 2>&1; then
            chown libvirt-qemu: "$dir"
        fi
        chmod 0771 "$dir"
    fi
    echo "$dir"
}

vk_domain_xml() {
    local name=$1 size=$2 ndisks=$3 dir=$4 i dev
    cat <<EOF
<domain type='$VK_DOMAIN_TYPE'>
  <name>$name</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
EOF
    for ((i = 0; i < ndisks; i++)); do
        dev=$(vk_disk_name "$i")
        cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='$dir/$name-$dev.qcow2'/>
      <target dev='$dev' bus='virtio'/>
    </disk>
EOF
    done
    cat <<EOF
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# vk_domain_create NAME [DISKSIZE] [NDISKS]
# Define a persistent domain with NDISKS (default 1) blank qcow2 disks of
# DISKSIZE (default 256M): vda, vdb, ...  The images live in
# $VK_SCRATCH/images/NAME-vdX.qcow2.  On exit the domain is destroyed and
# undefined together with its checkpoint and snapshot metadata.
vk_domain_create() {
    local name=$1 size=${2:-256M} ndisks=${3:-1} dir i dev
    [ -n "${VK_DOMAIN_TYPE:-}" ] || vk_start_libvirtd
    dir=$VK_SCRATCH/images
    mkdir -p "$dir"
    chmod 0755 "$dir"
    for ((i = 0; i < ndisks; i++)); do
        dev=$(vk_disk_name "$i")
        qemu-img create -q -f qcow2 "$dir/$name-$dev.qcow2" "$size"
    done
    vk_domain_xml "$name" "$size" "$ndisks" "$dir" >"$VK_SCRATCH/$name.xml"
    "${VK_VIRSH[@]}" define "$VK_SCRATCH/$name.xml" >/dev/null
    vk_on_exit "vk_domain_remove '$name'"
}

vk_domain_start() {
    "${VK_VIRSH[@]}" start "$1" >/dev/null
}

vk_domain_remove() {
    local name=$1 cp
    "${VK_VIRSH[@]}" destroy "$name" >/dev/null 2>&1 || true
    for cp in $("${VK_VIRSH[@]}" checkpoint-list "$name" --name --topological 2>/dev/null | tac); do
        "${VK_VIRSH[@]}" checkpoint-delete "$name" "$cp" --metadata >/dev/null 2>&1 || true
    done
    "${VK_VIRSH[@]}" undefine "$name" --checkpoints-metadata --snapshots-metadata \
        >/dev/null 2>&1 || "${VK_VIRSH[@]}" undefine "$name" >/dev/null
    rm -f "$VK_SCRATCH/images/$name-"vd?.qcow2 "/var/log/libvirt/qemu/$name.log"
}

# vk_domain_write NAME DISK PATTERN OFFSET LEN
# Write the byte PATTERN (e.g. 0xcd) over LEN bytes at OFFSET of disk DISK
# (vda, vdb...) of the running domain NAME, through HMP qemu-io.  OFFSET and
# LEN take qemu-io suffixes (64M, 1M, 4k).  HMP answers errors (such as an
# unknown device) on the monitor, but qemu-io prints its results on QEMU's
# stdout, which is the domain log: a write counts when the log shows it.
vk_domain_write() {
    local name=$1 disk=$2 pattern=$3 offset=$4 len=$5 qom out log before
    log=/var/log/libvirt/qemu/$name.log
    qom=/machine/peripheral/virtio-disk$(vk_disk_index "$disk")/virtio-backend
    before=$(vk_count_writes "$log")
    out=$("${VK_VIRSH[@]}" qemu-monitor-command "$name" --hmp \
        "qemu-io -d $qom \"write -P $pattern $offset $len\"" 2>&1) ||
        vk_fail "cannot write to disk '$disk' of domain '$name': $out"
    out=$(echo "$out" | tr -s '\r\n' ' ' | sed 's/ *$//')
    [ -z "$out" ] || vk_fail "cannot write to disk '$disk' of domain '$name': $out"
    vk_wait_for 10 vk_count_writes_above "$log" "$before" ||
        vk_fail "qemu-io did not report the write to disk '$disk' of domain '$name' in '$log'"
    if tail -n 20 "$log" | grep -Eq '^(write failed|Pattern|.*[Ee]rror)'; then
        vk_fail "cannot write to disk '$disk' of domain '$name': $(tail -n 3 "$log")"
    fi
}

# Number of complete qemu-io writes ("wrote N/N bytes") in the domain log.
vk_count_writes() {
    grep -Ec '^wrote ([0-9]+)/\1 bytes at offset' "$1" 2>/dev/null || true
}

vk_count_writes_above() {
    [ "$(vk_count_writes "$1")" -gt "$2" ]
}

# vk_backup_begin_pull NAME DISK SOCKET [CHECKPOINT] [INCREMENTAL]
# Begin a pull-mode backup of disk DISK of domain NAME, exported over NBD on
# the unix socket SOCKET (which must be in a directory QEMU can write, see
# vk_qemu_dir) under the export name DISK.  Other disks are left out.  With
# CHECKPOINT, a checkpoint of that name is created with the backup; with
# INCREMENTAL, only blocks changed since that checkpoint are exported as dirty
# (meta context qemu:dirty-bitmap:backup-DISK).
vk_backup_begin_pull() {
    local name=$1 disk=$2 socket=$3 checkpoint=${4:-} incremental=${5:-}
    local qdir xml cpxml d args=()
    qdir=$(vk_qemu_dir)
    xml=$VK_SCRATCH/$name-backup.xml
    {
        echo "<domainbackup mode='pull'>"
        [ -z "$incremental" ] || echo "  <incremental>$incremental</incremental>"
        echo "  <server transport='unix' socket='$socket'/>"
        echo "  <disks>"
        for d in $("${VK_VIRSH[@]}" domblklist "$name" | awk '{print $1}'); do
            if [ "$d" = "$disk" ]; then
                echo "    <disk name='$d' backup='yes' type='file'>"
                echo "      <scratch file='$qdir/$name-$d.scratch'/>"
                echo "    </disk>"
            else
                echo "    <disk name='$d' backup='no'/>"
            fi
        done
        echo "  </disks>"
        echo "</domainbackup>"
    } >"$xml"
    args=(backup-begin "$name" "$xml")
    if [ -n "$checkpoint" ]; then
        cpxml=$VK_SCRATCH/$name-checkpoint.xml
        cat >"$cpxml" <<EOF
<domaincheckpoint>
  <name>$checkpoint</name>
  <disks><disk name='$disk' checkpoint='bitmap'/></disks>
</domaincheckpoint>
EOF
        args+=("$cpxml")
    fi
    "${VK_VIRSH[@]}" "${args[@]}" >/dev/null
    vk_wait_for 10 test -S "$socket" || vk_fail "the NBD socket '$socket' did not appear"
}

vk_backup_job_ended() {
    "${VK_VIRSH[@]}" domjobinfo "$1" 2>/dev/null | grep -q 'Job type: *None'
}

# vk_backup_abort NAME: abort the backup job of NAME and wait until it ends.
vk_backup_abort() {
    local name=$1
    "${VK_VIRSH[@]}" domjobabort "$name" >/dev/null
    vk_wait_for 30 vk_backup_job_ended "$name" ||
        vk_fail "the backup job of domain '$name' did not end"
}

# ---------------------------------------------------------------------------
# sshd on 127.0.0.1 with its own host key, user key, authorized_keys and
# known_hosts.  Exports VK_SSH_HOST, VK_SSH_PORT, VK_SSH_USER, VK_SSH_KEY
# (private key; VK_SSH_KEY.pub is the public key), VK_SSH_KNOWN_HOSTS and
# VK_SSH_DIR.

vk_start_sshd() {
    local dir sshd port try pid
    vk_require_root_or_skip
    sshd=$(PATH=$PATH:/usr/sbin:/sbin command -v sshd || true)
    [ -n "$sshd" ] || vk_skip "sshd is not installed"
    vk_require_cmd ssh-keygen
    dir=$VK_SCRATCH/sshd
    mkdir -p "$dir"
    chmod 0700 "$dir"
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
    ssh-keygen -q -t ed25519 -N '' -C "virtkeep-test-host" -f "$dir/host_key"
    ssh-keygen -q -t ed25519 -N '' -C "virtkeep-test-user" -f "$dir/user_key"
    cp "$dir/user_key.pub" "$dir/authorized_keys"
    chmod 0600 "$dir/authorized_keys"
    for ((try = 0; try < 5; try++)); do
        vk_free_port
        port=$VK_PORT
        cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $dir/host_key
PidFile none
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
        "$sshd" -D -e -f "$dir/sshd_config" 2>>"$dir/sshd.log" &
        pid=$!
        if vk_wait_for 10 vk_port_in_use "$port"; then
            break
        fi
        vk_kill "$pid"
        pid=
    done
    [ -n "$pid" ] || vk_fail "sshd did not start: $(tail -5 "$dir/sshd.log")"
    vk_on_exit "vk_kill $pid"
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
    export VK_SSH_DIR=$dir VK_SSH_HOST=127.0.0.1 VK_SSH_PORT=$port
    VK_SSH_USER=$(id -un)
    export VK_SSH_USER VK_SSH_KEY=$dir/user_key VK_SSH_KNOWN_HOSTS=$dir/known_hosts
}

# ---------------------------------------------------------------------------
# vk_start_s3rver [BUCKET]: s3rver (npm) on 127.0.0.1 with one bucket.  Exports VK_S3_ENDPOINT
# (http://127.0.0.1:PORT), VK_S3_BUCKET, VK_S3_REGION, VK_S3_ACCESS_KEY,
# VK_S3_SECRET_FILE (a 0600 file holding the secret key), VK_S3_DIR (its
# data is under VK_S3_DIR/data) and VK_S3_FLAVOR=s3rver.  vk_start_rgw
# (below) exports the same for radosgw.

vk_s3rver_bin() {
    local b
    for b in "$VK_TEST_CACHE/node/node_modules/.bin/s3rver" "$(command -v s3rver || true)"; do
        if [ -n "$b" ] && [ -x "$b" ]; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

vk_s3_answers() {
    # Any HTTP answer will do; s3rver says 403 or 404 to an anonymous GET.
    curl -s -o /dev/null -m 2 "$1/"
}

vk_start_s3rver() {
    local bin dir port try pid bucket=${1:-virtkeep-test}
    command -v node >/dev/null 2>&1 || vk_skip "node is not installed"
    vk_require_cmd curl
    bin=$(vk_s3rver_bin) ||
        vk_skip "s3rver is not installed in $VK_TEST_CACHE/node (scripts/test installs it)"
    dir=$VK_SCRATCH/s3rver
    mkdir -p "$dir/data"
    for ((try = 0; try < 5; try++)); do
        vk_free_port
        port=$VK_PORT
        # s3rver encrypts list continuation tokens with DES, which Node 20
        # only has in OpenSSL's legacy provider: without it page 2 is a 500.
        NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--openssl-legacy-provider" \
            "$bin" -d "$dir/data" -a 127.0.0.1 -p "$port" --no-vhost-buckets \
            --configure-bucket "$bucket" >>"$dir/s3rver.log" 2>&1 &
        pid=$!
        if vk_wait_for 30 vk_s3_answers "http://127.0.0.1:$port"; then
            break
        fi
        vk_kill "$pid"
        pid=
    done
    [ -n "$pid" ] || vk_fail "s3rver did not start: $(tail -5 "$dir/s3rver.log")"
    vk_on_exit "vk_kill $pid"
    # s3rver's built-in account; the secret never goes on a command line.
    (
        umask 077
        printf '%s' S3RVER >"$dir/secret"
    )
    export VK_S3_ENDPOINT=http://127.0.0.1:$port VK_S3_BUCKET=$bucket VK_S3_REGION=us-east-1
    export VK_S3_ACCESS_KEY=S3RVER VK_S3_SECRET_FILE=$dir/secret VK_S3_DIR=$dir
    export VK_S3_FLAVOR=s3rver
}

# ---------------------------------------------------------------------------
# Ceph radosgw, a real S3 server (tests/lib/rgw.sh): it checks signatures and
# payload digests and implements ListMultipartUploads and
# AbortMultipartUpload, which s3rver does not.
#
# vk_rgw_up: make a radosgw available and source its env (VK_RGW_*, see
# rgw.sh).  When VK_RGW_ENV names the env file of a radosgw that answers
# (scripts/test starts one for the whole make check), that one is used;
# otherwise one is started for this test (about 10 s, root) and stopped on
# exit.

vk_rgw_answers() {
    local out
    out=$(curl -s -m 3 "$1/" 2>/dev/null) && [[ $out == *ListAllMyBucketsResult* ]]
}

vk_rgw_up() {
    vk_require_cmd curl
    if [ -n "${VK_RGW_ENDPOINT:-}" ] && vk_rgw_answers "$VK_RGW_ENDPOINT"; then
        return 0
    fi
    if [ -n "${VK_RGW_ENV:-}" ] && [ -f "$VK_RGW_ENV" ]; then
        # shellcheck source=/dev/null
        . "$VK_RGW_ENV"
        if vk_rgw_answers "$VK_RGW_ENDPOINT"; then
            vk_log "radosgw: the shared one at $VK_RGW_ENDPOINT (VK_RGW_ENV)"
            return 0
        fi
        vk_log "the radosgw of VK_RGW_ENV='$VK_RGW_ENV' does not answer: starting one"
    fi
    vk_require_root_or_skip
    vk_require_cmd ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool
    # shellcheck source=tests/lib/rgw.sh
    . "$abs_top_srcdir/tests/lib/rgw.sh"
    vk_on_exit "vk_rgw_stop '$VK_SCRATCH/rgw'"
    vk_rgw_start "$VK_SCRATCH/rgw" || vk_fail "radosgw did not start (logs above)"
    # shellcheck source=/dev/null
    . "$VK_SCRATCH/rgw/env"
    vk_log "radosgw: started for this test in $VK_RGW_START_SECONDS s"
}

# vk_rgw_s3req OUT METHOD PATH [CURL ARGS...]: a request signed with the
# test user's keys (through a curl config on stdin, not the command line);
# the body goes to the file OUT, the HTTP status to VK_RGW_STATUS.  PATH
# starts with '/' and is in canonical form (encoded, query sorted,
# "name=value").
vk_rgw_s3req() {
    local out=$1 method=$2 path=$3
    shift 3
    VK_RGW_STATUS=$(printf 'user = "%s:%s"\n' "$VK_RGW_ACCESS_KEY" "$VK_RGW_SECRET_KEY" |
        curl -sS -m 60 -K - --aws-sigv4 "aws:amz:${VK_RGW_REGION:-us-east-1}:s3" -X "$method" \
            -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
            -o "$out" -w '%{http_code}' "$@" "$VK_RGW_ENDPOINT$path") || VK_RGW_STATUS=000
}

# vk_start_rgw [NAME]: a radosgw (vk_rgw_up) and a new, empty bucket of its
# own (NAME-PID-RANDOM: tests share the radosgw).  Exports what
# vk_start_s3rver exports: VK_S3_ENDPOINT, VK_S3_BUCKET, VK_S3_REGION,
# VK_S3_ACCESS_KEY, VK_S3_SECRET_FILE; and VK_S3_FLAVOR=rgw.
vk_start_rgw() {
    local name=${1:-vk}-$$-$RANDOM
    vk_rgw_up
    vk_rgw_s3req "$VK_SCRATCH/rgw-bucket.out" PUT "/$name"
    [ "$VK_RGW_STATUS" = 200 ] ||
        vk_fail "cannot create the bucket '$name' on radosgw: HTTP $VK_RGW_STATUS:" \
            "$(head -c 400 "$VK_SCRATCH/rgw-bucket.out" 2>/dev/null)"
    export VK_S3_ENDPOINT=$VK_RGW_ENDPOINT VK_S3_BUCKET=$name VK_S3_REGION=$VK_RGW_REGION
    export VK_S3_ACCESS_KEY=$VK_RGW_ACCESS_KEY VK_S3_SECRET_FILE=$VK_RGW_SECRET_FILE
    export VK_S3_FLAVOR=rgw
    unset VK_S3_DIR
}

# vk_rgw_get KEY FILE: the object KEY of the bucket of vk_start_rgw into FILE.
vk_rgw_get() {
    vk_rgw_s3req "$2" GET "/$VK_S3_BUCKET/$1"
    [ "$VK_RGW_STATUS" = 200 ] || vk_fail "cannot get '$1' from radosgw: HTTP $VK_RGW_STATUS"
}
