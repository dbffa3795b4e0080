#!/bin/bash
# shellcheck shell=bash
# virtkeep - a real S3 server for the tests: Ceph radosgw on a one-node
# cluster (one mon, one bluestore OSD on a sparse file, radosgw with the beast
# frontend), everything on 127.0.0.1 and under one directory.
#
#     tests/lib/rgw.sh start DIR    build and start the cluster in DIR (which
#                                   must not exist or be empty), create the
#                                   test user and buckets, write DIR/env
#     tests/lib/rgw.sh env DIR      print DIR/env (shell assignments)
#     tests/lib/rgw.sh stop DIR     stop radosgw, the OSD and the mon by pid
#                                   and remove DIR
#
# Or source it from bash and call vk_rgw_start / vk_rgw_env / vk_rgw_stop
# DIR: they return non-zero on failure and do not change the caller's shell
# options.  A harness would do:
#
#     vk_rgw_start "$VK_SCRATCH/rgw" || vk_fail "radosgw did not start"
#     vk_on_exit "vk_rgw_stop '$VK_SCRATCH/rgw'"
#     . "$VK_SCRATCH/rgw/env"
#
# DIR/env sets and exports VK_RGW_ENDPOINT (http://127.0.0.1:PORT),
# VK_RGW_REGION, VK_RGW_ACCESS_KEY, VK_RGW_SECRET_KEY, VK_RGW_SECRET_FILE (0600
# file holding the secret), VK_RGW_BUCKET (a plain bucket), VK_RGW_LOCK_BUCKET
# (created with Object Lock enabled, hence versioned), VK_RGW_DIR,
# VK_RGW_CONF, VK_RGW_MON_PID, VK_RGW_OSD_PID, VK_RGW_RGW_PID and
# VK_RGW_START_SECONDS (how long start took).
#
# The daemons run in the foreground (-f) as background jobs of this shell, so
# that their pids are the $! recorded in DIR/pids; they do not fork away.
# Needs root (the OSD opens its block file with O_DIRECT and the daemons
# write where they like) and the Debian packages ceph-mon, ceph-osd, radosgw
# and ceph-common.
#
# Environment:
#   VK_RGW_TIMEOUT   seconds to wait for each daemon (default 120)
#   TMPDIR           where the TCP port claims live (shared with harness.sh)

VK_RGW_ACCESS_KEY_FIXED=VKTESTACCESSKEY00001
VK_RGW_SECRET_KEY_FIXED=vktestsecretkey0000000000000000000000001
VK_RGW_USER=virtkeep-test
VK_RGW_PORT_DIR=${TMPDIR:-/tmp}/virtkeep-test-ports
VK_RGW_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

vk_rgw_log() {
    echo "rgw.sh: $*" >&2
}

# vk_rgw_tail FILE...: the end of each log, indented, to stderr.  In the
# daemons' own logs only the time-stamped lines count: RocksDB dumps pages of
# statistics tables in between.
vk_rgw_tail() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        echo "--- last lines of $f:" >&2
        case ${f##*/} in
        ceph-*.log) grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$f" | tail -n 20 ;;
        *) grep -v '^[[:space:]]*$' "$f" | tail -n 20 ;;
        esac | sed 's/^/    /' >&2
    done
}

vk_rgw_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# vk_rgw_claim_port DIR: print a free port on 127.0.0.1, claimed with an
# atomic mkdir in the same place as harness.sh's claims; the claim is noted
# in DIR/ports and released by stop.
vk_rgw_claim_port() {
    local dir=$1 port i
    mkdir -p "$VK_RGW_PORT_DIR" || return 1
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        vk_rgw_port_in_use "$port" && continue
        if mkdir "$VK_RGW_PORT_DIR/$port" 2>/dev/null; then
            echo "$port" >>"$dir/ports"
            echo "$port"
            return 0
        fi
    done
    vk_rgw_log "cannot find a free TCP port on 127.0.0.1"
    return 1
}

# vk_rgw_wait SECS CMD...: run CMD every 0.2 s until it succeeds.
vk_rgw_wait() {
    local secs=$1 end
    shift
    end=$((SECONDS + secs))
    while ((SECONDS < end)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    "$@" >/dev/null 2>&1
}

# A daemon that has exited but is not reaped yet (a zombie) is gone: once
# start returns, the daemons are orphans, and some init processes reap them
# only every second or so; kill -0 still succeeds on a zombie.
vk_rgw_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# True if PID is one of the daemons of the cluster in DIR (the pid may have
# been reused since).
vk_rgw_owns() {
    local pid=$1 dir=$2
    local cmd
    [ -n "$pid" ] && cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") &&
        [[ $cmd == *" $dir/ceph.conf "* ]]
}

# vk_rgw_spawn DIR NAME LOG CMD...: start CMD in the background with no
# inherited descriptors beyond stdin/out/err (a daemon holding the test
# driver's pipes open would hang make check), note its pid in DIR/pids as
# NAME_PID, and set VK_RGW_SPAWNED to it.
vk_rgw_spawn() {
    local dir=$1 name=$2 log=$3
    shift 3
    (
        for fd in "/proc/$BASHPID/fd/"*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        exec "$@"
    ) </dev/null >>"$log" 2>&1 &
    VK_RGW_SPAWNED=$!
    echo "${name}_PID=$VK_RGW_SPAWNED" >>"$dir/pids"
}

# vk_rgw_kill DIR PID WHAT: TERM, then KILL after 30 s; wait until it is gone.
vk_rgw_kill() {
    local dir=$1 pid=$2 what=$3 i
    vk_rgw_owns "$pid" "$dir" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        vk_rgw_alive "$pid" || break
        sleep 0.1
    done
    if vk_rgw_alive "$pid" && vk_rgw_owns "$pid" "$dir"; then
        vk_rgw_log "$what (pid $pid) ignored SIGTERM for 30 s, killing it"
        kill -KILL "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            vk_rgw_alive "$pid" || break
            sleep 0.1
        done
    fi
    # Reap it if it is our child (sourced use); harmless otherwise.
    wait "$pid" 2>/dev/null
    if vk_rgw_alive "$pid" && vk_rgw_owns "$pid" "$dir"; then
        vk_rgw_log "$what (pid $pid) does not die"
        return 1
    fi
    return 0
}

vk_rgw_write_conf() {
    local dir=$1 fsid=$2 monport=$3
    cat >"$dir/ceph.conf" <<EOF
# One-node test cluster written by tests/lib/rgw.sh; every path is under
# $dir.  Auth is off: this cluster only listens on 127.0.0.1 (radosgw checks
# S3 signatures itself).
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$monport
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
# Without it radosgw loops on "get_initial_auth_request returned -13".
ms mon client mode = crc
auth cluster required = none
auth service required = none
auth client required = none
keyring = $dir/keyring
run dir = $dir/run
crash dir = $dir/crash
log file = $dir/log/\$cluster-\$name.log
mon cluster log file = $dir/log/\$cluster.\$channel.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
# radosgw creates ~16 pools at its first start: one Paxos round each.
paxos propose interval = 0.1
osd objectstore = bluestore

[mon]
mon data = $dir/mon/\$cluster-\$id

[osd]
osd data = $dir/osd/\$cluster-\$id
bluestore block create = true
bluestore block size = 21474836480
bluestore fsck on mkfs = false
osd memory target = 1073741824

[client.rgw.vk]
rgw data = $dir/rgw
rgw thread pool size = 32
EOF
}

# The ceph CLI with this cluster's configuration, bounded in time.
vk_rgw_ceph() {
    local dir=$1
    shift
    timeout 60 ceph -c "$dir/ceph.conf" --connect-timeout 30 "$@"
}

vk_rgw_mon_up() {
    local dir=$1 port=$2 pid=$3
    vk_rgw_alive "$pid" || return 2
    vk_rgw_port_in_use "$port" || return 1
}

vk_rgw_osd_up() {
    local dir=$1 pid=$2
    vk_rgw_alive "$pid" || return 2
    local out
    out=$(vk_rgw_ceph "$dir" osd stat 2>/dev/null) && [[ $out == *"1 up"* ]]
}

# radosgw is serving S3 when an anonymous GET / lists (no) buckets: a bare
# 200 is not proof, other things answer HTTP.
vk_rgw_s3_up() {
    local port=$1 pid=$2
    vk_rgw_alive "$pid" || return 2
    local out
    out=$(curl -s -m 3 "http://127.0.0.1:$port/" 2>/dev/null) && [[ $out == *ListAllMyBucketsResult* ]]
}

# vk_rgw_wait_daemon SECS WHAT LOG CHECK ARGS...: wait for CHECK, failing
# early when it says the daemon died (2).
vk_rgw_wait_daemon() {
    local secs=$1 what=$2 log=$3 end rc
    shift 3
    end=$((SECONDS + secs))
    while :; do
        rc=0
        "$@" >/dev/null 2>&1 || rc=$?
        [ "$rc" = 0 ] && return 0
        if [ "$rc" = 2 ]; then
            vk_rgw_log "$what exited during start-up"
            return 2
        fi
        if ((SECONDS >= end)); then
            vk_rgw_log "$what is not up after $secs s"
            return 1
        fi
        sleep 0.2
    done
}

# vk_rgw_s3 SK AK METHOD URL [CURL ARGS...]: a SigV4-signed request with
# curl; the credentials go through a config on stdin, not the command line.
vk_rgw_s3() {
    local ak=$1 sk=$2 method=$3 url=$4
    shift 4
    printf 'user = "%s:%s"\n' "$ak" "$sk" |
        curl -sS -m 30 -K - --aws-sigv4 "aws:amz:us-east-1:s3" -X "$method" "$@" "$url"
}

# vk_rgw_make_bucket DIR ENDPOINT NAME [HEADER]: PUT Bucket, 200 expected.
vk_rgw_make_bucket() {
    local dir=$1 ep=$2 name=$3 hdr=${4:-} code args=()
    [ -z "$hdr" ] || args=(-H "$hdr")
    code=$(vk_rgw_s3 "$VK_RGW_ACCESS_KEY_FIXED" "$VK_RGW_SECRET_KEY_FIXED" PUT "$ep/$name" \
        -H "x-amz-content-sha256: $VK_RGW_EMPTY_SHA256" "${args[@]}" \
        -o "$dir/log/create-$name.out" -w '%{http_code}') || code=000
    if [ "$code" != 200 ]; then
        vk_rgw_log "cannot create bucket '$name': HTTP $code"
        vk_rgw_tail "$dir/log/create-$name.out" "$dir/log/ceph-client.rgw.vk.log"
        return 1
    fi
}

vk_rgw_now() {
    date +%s.%N
}

# vk_rgw_step T0 WHAT: note progress with the seconds since T0.
vk_rgw_step() {
    vk_rgw_log "$(echo "$(vk_rgw_now) $1" | awk '{printf "%5.1f", $1 - $2}') s: $2"
}

# vk_rgw_start DIR
vk_rgw_start() {
    local dir=${1:?usage: vk_rgw_start DIR} t0 fsid monport rgwport osduuid try ok
    local mon_pid="" osd_pid="" rgw_pid="" osd_id rc timeout=${VK_RGW_TIMEOUT:-120} log secs
    t0=$(vk_rgw_now)
    case $dir in
    /*) ;;
    *) dir=$PWD/$dir ;;
    esac
    if [ "$(id -u)" != 0 ]; then
        vk_rgw_log "start needs root"
        return 1
    fi
    local c
    for c in ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph curl \
        timeout; do
        PATH=$PATH:/usr/sbin:/sbin command -v "$c" >/dev/null 2>&1 || {
            vk_rgw_log "'$c' is not installed (Debian: ceph-mon ceph-osd radosgw ceph-common)"
            return 1
        }
    done
    export PATH=$PATH:/usr/sbin:/sbin
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        vk_rgw_log "'$dir' exists and is not empty"
        return 1
    fi
    # Unix sockets (admin sockets) are limited to 107 bytes.
    if [ $((${#dir} + 48)) -gt 107 ]; then
        vk_rgw_log "'$dir' is too long for the daemons' admin sockets; use a shorter path"
        return 1
    fi
    mkdir -p "$dir"/{run,log,crash,mon,osd/ceph-0,rgw} || return 1
    : >"$dir/pids"
    : >"$dir/ports"

    # The mon.  Its address is in the monmap, so a port taken between our
    # check and its bind means a new monmap: retry from scratch.
    fsid=$(cat /proc/sys/kernel/random/uuid)
    ok=
    for ((try = 0; try < 3; try++)); do
        monport=$(vk_rgw_claim_port "$dir") || return 1
        vk_rgw_write_conf "$dir" "$fsid" "$monport"
        rm -rf "$dir/mon/ceph-a" "$dir/keyring" "$dir/monmap"
        if ! {
            ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' &&
                ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' \
                    --cap osd 'allow *' --cap mgr 'allow *' &&
                monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$monport]" \
                    "$dir/monmap" &&
                ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" \
                    --keyring "$dir/keyring"
        } >>"$dir/log/mkfs.log" 2>&1; then
            vk_rgw_log "cannot create the mon"
            vk_rgw_tail "$dir/log/mkfs.log" "$dir/log/ceph-mon.a.log"
            return 1
        fi
        vk_rgw_spawn "$dir" MON "$dir/log/mon.out" ceph-mon -f -c "$dir/ceph.conf" -i a
        mon_pid=$VK_RGW_SPAWNED
        if vk_rgw_wait_daemon 30 "ceph-mon (pid $mon_pid, port $monport)" "$dir/log/ceph-mon.a.log" \
            vk_rgw_mon_up "$dir" "$monport" "$mon_pid"; then
            vk_rgw_step "$t0" "ceph-mon (pid $mon_pid) listens on 127.0.0.1:$monport"
            ok=1
            break
        fi
        vk_rgw_tail "$dir/log/mon.out" "$dir/log/ceph-mon.a.log"
        vk_rgw_kill "$dir" "$mon_pid" ceph-mon
        vk_rgw_alive "$mon_pid" && break
    done
    if [ -z "$ok" ]; then
        vk_rgw_log "ceph-mon did not start"
        vk_rgw_stop_daemons "$dir"
        return 1
    fi

    # One bluestore OSD on a sparse file.
    osduuid=$(cat /proc/sys/kernel/random/uuid)
    if ! osd_id=$(vk_rgw_ceph "$dir" osd new "$osduuid" 2>>"$dir/log/mkfs.log") ||
        [ "$osd_id" != 0 ]; then
        vk_rgw_log "'ceph osd new' failed (got '${osd_id:-}'): the mon does not answer"
        vk_rgw_tail "$dir/log/mkfs.log" "$dir/log/ceph-mon.a.log"
        vk_rgw_stop_daemons "$dir"
        return 1
    fi
    rc=0
    timeout "$timeout" ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osduuid" \
        >>"$dir/log/mkfs.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        if [ "$rc" = 124 ]; then
            vk_rgw_log "ceph-osd --mkfs did not finish in $timeout s"
        else
            vk_rgw_log "ceph-osd --mkfs failed (exit status $rc)"
        fi
        vk_rgw_tail "$dir/log/mkfs.log" "$dir/log/ceph-osd.0.log"
        vk_rgw_stop_daemons "$dir"
        return 1
    fi
    vk_rgw_step "$t0" "OSD created"
    vk_rgw_spawn "$dir" OSD "$dir/log/osd.out" ceph-osd -f -c "$dir/ceph.conf" -i 0
    osd_pid=$VK_RGW_SPAWNED
    if ! vk_rgw_wait_daemon "$timeout" "ceph-osd (pid $osd_pid)" "$dir/log/ceph-osd.0.log" \
        vk_rgw_osd_up "$dir" "$osd_pid"; then
        vk_rgw_tail "$dir/log/osd.out" "$dir/log/ceph-osd.0.log" "$dir/log/ceph-mon.a.log"
        vk_rgw_stop_daemons "$dir"
        return 1
    fi

    vk_rgw_step "$t0" "ceph-osd (pid $osd_pid) is up"

    # radosgw.  If its port was taken meanwhile, beast fails and radosgw
    # exits: try another.
    ok=
    log=$dir/log/ceph-client.rgw.vk.log
    for ((try = 0; try < 3; try++)); do
        rgwport=$(vk_rgw_claim_port "$dir") || break
        vk_rgw_spawn "$dir" RGW "$dir/log/rgw.out" radosgw -f -c "$dir/ceph.conf" -n client.rgw.vk \
            --rgw-frontends "beast endpoint=127.0.0.1:$rgwport"
        rgw_pid=$VK_RGW_SPAWNED
        if vk_rgw_wait_daemon "$timeout" "radosgw (pid $rgw_pid, port $rgwport)" "$log" \
            vk_rgw_s3_up "$rgwport" "$rgw_pid"; then
            vk_rgw_step "$t0" "radosgw (pid $rgw_pid) serves S3 on 127.0.0.1:$rgwport"
            ok=1
            break
        fi
        vk_rgw_tail "$dir/log/rgw.out" "$log"
        vk_rgw_kill "$dir" "$rgw_pid" radosgw
        vk_rgw_alive "$rgw_pid" && break
    done
    if [ -z "$ok" ]; then
        vk_rgw_log "radosgw did not start"
        vk_rgw_tail "$dir/log/ceph-osd.0.log"
        vk_rgw_stop_daemons "$dir"
        return 1
    fi

    # The test user, with fixed keys, and the buckets.
    if ! timeout 60 radosgw-admin -c "$dir/ceph.conf" user create --uid="$VK_RGW_USER" \
        --display-name="virtkeep test" --access-key="$VK_RGW_ACCESS_KEY_FIXED" \
        --secret-key="$VK_RGW_SECRET_KEY_FIXED" >>"$dir/log/admin.log" 2>&1; then
        vk_rgw_log "radosgw-admin user create failed"
        vk_rgw_tail "$dir/log/admin.log"
        vk_rgw_stop_daemons "$dir"
        return 1
    fi
    local ep=http://127.0.0.1:$rgwport
    if ! vk_rgw_make_bucket "$dir" "$ep" vk-test ||
        ! vk_rgw_make_bucket "$dir" "$ep" vk-test-lock "x-amz-bucket-object-lock-enabled: true"; then
        vk_rgw_stop_daemons "$dir"
        return 1
    fi
    (
        umask 077
        printf '%s' "$VK_RGW_SECRET_KEY_FIXED" >"$dir/secret"
    )
    secs=$(echo "$(vk_rgw_now) $t0" | awk '{printf "%.1f", $1 - $2}')
    {
        echo "# radosgw test cluster, written by tests/lib/rgw.sh start"
        printf 'export VK_RGW_ENDPOINT=%q\n' "$ep"
        printf 'export VK_RGW_REGION=%q\n' us-east-1
        printf 'export VK_RGW_ACCESS_KEY=%q\n' "$VK_RGW_ACCESS_KEY_FIXED"
        printf 'export VK_RGW_SECRET_KEY=%q\n' "$VK_RGW_SECRET_KEY_FIXED"
        printf 'export VK_RGW_SECRET_FILE=%q\n' "$dir/secret"
        printf 'export VK_RGW_BUCKET=%q\n' vk-test
        printf 'export VK_RGW_LOCK_BUCKET=%q\n' vk-test-lock
        printf 'export VK_RGW_DIR=%q\n' "$dir"
        printf 'export VK_RGW_CONF=%q\n' "$dir/ceph.conf"
        printf 'export VK_RGW_MON_PID=%q\n' "$mon_pid"
        printf 'export VK_RGW_OSD_PID=%q\n' "$osd_pid"
        printf 'export VK_RGW_RGW_PID=%q\n' "$rgw_pid"
        printf 'export VK_RGW_START_SECONDS=%q\n' "$secs"
    } >"$dir/env.tmp" && mv "$dir/env.tmp" "$dir/env"
    vk_rgw_log "radosgw is up at $ep after $secs s (mon $mon_pid, osd $osd_pid, rgw $rgw_pid)"
}

# Stop the daemons noted in DIR/pids: radosgw, then the OSD, then the mon.
vk_rgw_stop_daemons() {
    local dir=$1 name pid rc=0 line t0
    t0=$(vk_rgw_now)
    [ -f "$dir/pids" ] || return 0
    for name in RGW OSD MON; do
        # Every pid noted under that name (a retried start notes several).
        while read -r line; do
            pid=${line#"${name}_PID="}
            vk_rgw_kill "$dir" "$pid" "$name" || rc=1
            [ -z "${VK_RGW_DEBUG:-}" ] || vk_rgw_step "$t0" "stopped $name"
        done < <(grep "^${name}_PID=" "$dir/pids")
    done
    return $rc
}

# vk_rgw_stop DIR
vk_rgw_stop() {
    local dir=${1:?usage: vk_rgw_stop DIR} port
    case $dir in
    /*) ;;
    *) dir=$PWD/$dir ;;
    esac
    [ -d "$dir" ] || return 0
    if ! vk_rgw_stop_daemons "$dir"; then
        vk_rgw_log "some daemons did not stop; keeping '$dir'"
        return 1
    fi
    if [ -f "$dir/ports" ]; then
        while read -r port; do
            [ -n "$port" ] && rmdir "$VK_RGW_PORT_DIR/$port" 2>/dev/null
        done <"$dir/ports"
    fi
    rm -rf "$dir"
}

# vk_rgw_env DIR
vk_rgw_env() {
    local dir=${1:?usage: vk_rgw_env DIR}
    if [ ! -f "$dir/env" ]; then
        vk_rgw_log "no radosgw was started in '$dir'"
        return 1
    fi
    cat "$dir/env"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    case ${1:-} in
    start | stop | env)
        [ $# = 2 ] || {
            echo "usage: $0 start|stop|env DIR" >&2
            exit 2
        }
        "vk_rgw_$1" "$2"
        ;;
    *)
        echo "usage: $0 start|stop|env DIR" >&2
        exit 2
        ;;
    esac
fi
