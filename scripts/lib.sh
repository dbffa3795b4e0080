# shellcheck shell=bash
# virtkeep - shell functions shared by scripts/test and scripts/demo.
#
# Source it from bash:  . "$ROOT/scripts/lib.sh"
# Everything here is idempotent: it installs or starts only what is missing,
# so running a script twice is quick.  It needs root to install packages and
# to run libvirtd.

VK_CACHE=${VIRTKEEP_TEST_CACHE:-/var/cache/virtkeep-test}

# Debian packages that the build, the tests and the demo need.  clang and its
# runtime (libclang-rt-14-dev: libFuzzer, only recommended by clang) build the
# fuzz targets; jq reads archive indexes in the tests; python3-cryptography
# decrypts a sealed backup independently (tests/e2e/test-seal-python.sh).
VK_DEB_PACKAGES=(
    build-essential autoconf automake libtool pkg-config clang libclang-rt-14-dev clang-format
    libvirt-dev libnbd-dev libzstd-dev libarchive-dev libcurl4-openssl-dev libssh2-1-dev
    libsqlite3-dev libpq-dev libjson-c-dev libinih-dev libxml2-dev libcmocka-dev libssl-dev
    libmicrohttpd-dev
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils libnbd-bin
    openssh-server openssh-client
    zstd tar sqlite3 jq valgrind python3 python3-cryptography curl ca-certificates procps
    util-linux
)

# A real S3 server for the tests that need one that checks what it is sent
# (signatures, payload digests, Object Lock): Ceph radosgw on a one-node
# cluster, started by tests/lib/rgw.sh.  No mgr, no cephadm: these four are
# enough without their recommends.
VK_DEB_PACKAGES_RGW=(ceph-mon ceph-osd radosgw ceph-common)

# A real PostgreSQL 15 server for the catalog contract suite on the
# PostgreSQL backend (tests/lib/pg.sh); libpq-dev, which the build needs, is
# above.
VK_DEB_PACKAGES_PG=(postgresql)

# npm packages for the end-to-end tests, installed under $VK_CACHE/node.
VK_NPM_PACKAGES=(s3rver@3)

vk_msg() {
    echo "virtkeep: $*" >&2
}

vk_die() {
    vk_msg "error: $*"
    exit 1
}

vk_need_root() {
    [ "$(id -u)" = 0 ] || vk_die "$1 needs root (run it with sudo)"
}

vk_deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install the Debian packages in "$@" that are not installed yet.
vk_install_debs() {
    local missing=() p
    for p in "$@"; do
        vk_deb_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    vk_need_root "installing ${missing[*]}"
    vk_msg "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# Node.js and npm: any node >= 14 with npm will do.  Some machines have them
# from elsewhere (e.g. a nodejs package that bundles npm), and Debian's npm
# package conflicts with those, so look for the commands, not the packages.
vk_install_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        return 0
    fi
    vk_install_debs nodejs npm
}

# Install the npm packages for the tests into $VK_CACHE/node (outside the work
# tree, reused when present).
vk_install_npm() {
    local dir=$VK_CACHE/node missing=() p name
    vk_install_node
    for p in "${VK_NPM_PACKAGES[@]}"; do
        name=${p%@*}
        [ -f "$dir/node_modules/$name/package.json" ] || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    vk_msg "installing npm packages into $dir: ${missing[*]}"
    mkdir -p "$dir"
    (cd "$dir" && npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        "${missing[@]}" </dev/null)
}

vk_install_all() {
    vk_install_debs "${VK_DEB_PACKAGES[@]}" "${VK_DEB_PACKAGES_RGW[@]}" "${VK_DEB_PACKAGES_PG[@]}"
    vk_install_npm
}

vk_libvirtd_answers() {
    virsh -q -c qemu:///system version >/dev/null 2>&1
}

# Start virtlogd and libvirtd (no systemd here) unless libvirtd answers, and
# make /dev/kvm usable by QEMU, which runs as libvirt-qemu.
vk_start_libvirtd() {
    local i
    export PATH=$PATH:/usr/sbin:/sbin
    if ! vk_libvirtd_answers; then
        vk_need_root "starting libvirtd"
        pgrep -x virtlogd >/dev/null || virtlogd -d
        pgrep -x libvirtd >/dev/null || libvirtd -d
        for ((i = 0; i < 300; i++)); do
            vk_libvirtd_answers && break
            sleep 0.1
        done
        vk_libvirtd_answers || vk_die "libvirtd does not answer on qemu:///system"
        vk_msg "started libvirtd"
    fi
    if [ -c /dev/kvm ]; then
        if [ "$(id -u)" = 0 ] && [ "$(stat -c %a /dev/kvm)" != 666 ]; then
            chmod 666 /dev/kvm && vk_msg "made /dev/kvm usable by libvirt-qemu"
        fi
    else
        vk_msg "note: no /dev/kvm, domains run under TCG"
    fi
}

# sshd needs its privilege separation directory, which systemd would create.
vk_prepare_sshd() {
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
}
