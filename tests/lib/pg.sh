#!/bin/bash
# shellcheck shell=bash
# virtkeep - a real PostgreSQL 15 server for the tests, in one directory.
#
#     tests/lib/pg.sh start DIR    initdb in DIR (which must not exist or be
#                                  empty) as the unprivileged user 'postgres',
#                                  start the server on a unix socket in DIR and
#                                  on 127.0.0.1, create the test role and
#                                  database, write DIR/env
#     tests/lib/pg.sh env DIR      print DIR/env (KEY=VALUE lines)
#     tests/lib/pg.sh stop DIR     stop the server by its pid and remove DIR
#
# Or source it from bash and call vk_pg_start / vk_pg_env / vk_pg_stop DIR:
# they return non-zero on failure and do not change the caller's shell
# options.
#
# DIR/env holds KEY='VALUE' lines (paths never hold quotes), for the shell
# (set -a; . DIR/env) and for the C tests:
#   VK_PG_URL            postgresql://vktest@/vktest?host=DIR/sock: the test
#                        role and database over the unix socket, no password
#                        source (add one: passfile=, password_file=)
#   VK_PG_TCP_URL        the same over 127.0.0.1:PORT
#   VK_PG_PASSFILE       a 0600 pgpass file with the test role's password
#   VK_PG_PASSWORD_FILE  a 0600 file holding only the password
#   VK_PG_ADMIN_URL      the superuser 'postgres' over the socket (trust): the
#                        tests create and drop databases and terminate
#                        backends with it
#   VK_PG_HOST VK_PG_PORT VK_PG_USER VK_PG_DB VK_PG_DIR VK_PG_PID
#
# The test role authenticates with scram-sha-256, so a connection without
# its password fails: the tests prove where the password comes from.  The
# server runs in the foreground (postgres, not pg_ctl) as a background job
# of this shell through setpriv, so its pid is $!.  Needs root (to switch to
# 'postgres') and Debian's postgresql-15.
#
# Environment:
#   VK_PG_TIMEOUT   seconds to wait for the server (default 60)
#   TMPDIR          where the TCP port claims live (shared with harness.sh)

VK_PG_BIN=${VK_PG_BIN:-/usr/lib/postgresql/15/bin}
VK_PG_OS_USER=postgres
VK_PG_ROLE=vktest
VK_PG_PORT_DIR=${TMPDIR:-/tmp}/virtkeep-test-ports

vk_pg_log() {
    echo "pg.sh: $*" >&2
}

vk_pg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# vk_pg_claim_port DIR: a free port on 127.0.0.1, claimed with an atomic
# mkdir where harness.sh and rgw.sh claim theirs; released by stop.
vk_pg_claim_port() {
    local dir=$1 port i
    mkdir -p "$VK_PG_PORT_DIR" || return 1
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        vk_pg_port_in_use "$port" && continue
        if mkdir "$VK_PG_PORT_DIR/$port" 2>/dev/null; then
            echo "$port" >"$dir/port"
            echo "$port"
            return 0
        fi
    done
    vk_pg_log "no free port on 127.0.0.1"
    return 1
}

vk_pg_alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

# vk_pg_psql DIR PSQL-ARGS...: psql as the superuser over the socket.
vk_pg_psql() {
    local dir=$1
    shift
    "$VK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$(cat "$dir/port")" \
        -U "$VK_PG_OS_USER" "$@"
}

vk_pg_tail() {
    [ -s "$1" ] || return 0
    echo "--- last lines of $1:" >&2
    tail -n 20 "$1" | sed 's/^/    /' >&2
}

# vk_pg_start DIR
vk_pg_start() {
    local dir=${1:?usage: vk_pg_start DIR} port pid pw i timeout=${VK_PG_TIMEOUT:-60}
    case $dir in
    /*) ;;
    *) dir=$PWD/$dir ;;
    esac
    if [ "$(id -u)" != 0 ]; then
        vk_pg_log "start needs root (the server runs as '$VK_PG_OS_USER')"
        return 1
    fi
    if [ ! -x "$VK_PG_BIN/initdb" ] || [ ! -x "$VK_PG_BIN/postgres" ]; then
        vk_pg_log "PostgreSQL 15 is not installed in $VK_PG_BIN (Debian: postgresql)"
        return 1
    fi
    if ! id "$VK_PG_OS_USER" >/dev/null 2>&1; then
        vk_pg_log "there is no user '$VK_PG_OS_USER' (Debian's postgresql creates it)"
        return 1
    fi
    command -v setpriv >/dev/null || {
        vk_pg_log "setpriv is not installed (util-linux)"
        return 1
    }
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
        vk_pg_log "'$dir' exists and is not empty"
        return 1
    fi
    # The socket path (DIR/sock/.s.PGSQL.PORT) must fit in 107 bytes.
    if [ $((${#dir} + 24)) -gt 107 ]; then
        vk_pg_log "'$dir' is too long for the server's unix socket; use a shorter path"
        return 1
    fi
    mkdir -p "$dir/sock" "$dir/data" || return 1
    chmod 0755 "$dir"
    chown "$VK_PG_OS_USER:" "$dir/sock" "$dir/data" || return 1
    chmod 0700 "$dir/data"
    port=$(vk_pg_claim_port "$dir") || return 1

    if ! setpriv --reuid="$VK_PG_OS_USER" --regid="$VK_PG_OS_USER" --init-groups \
        "$VK_PG_BIN/initdb" -D "$dir/data" -U "$VK_PG_OS_USER" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1; then
        vk_pg_log "initdb failed"
        vk_pg_tail "$dir/initdb.log"
        return 1
    fi
    # The superuser over the socket without a password (the tests' admin);
    # every other role needs its password, on the socket as over TCP.
    cat >"$dir/data/pg_hba.conf" <<EOF
local all $VK_PG_OS_USER trust
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
EOF
    setpriv --reuid="$VK_PG_OS_USER" --regid="$VK_PG_OS_USER" --init-groups \
        "$VK_PG_BIN/postgres" -D "$dir/data" -k "$dir/sock" -p "$port" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=100 -c shared_buffers=16MB \
        -c log_min_messages=warning -c logging_collector=off \
        </dev/null >"$dir/server.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    for ((i = 0; i < timeout * 10; i++)); do
        if ! vk_pg_alive "$pid"; then
            vk_pg_log "the server (pid $pid) exited"
            vk_pg_tail "$dir/server.log"
            vk_pg_stop "$dir"
            return 1
        fi
        if "$VK_PG_BIN/pg_isready" -q -h "$dir/sock" -p "$port" -U "$VK_PG_OS_USER"; then
            break
        fi
        sleep 0.1
    done
    if ! "$VK_PG_BIN/pg_isready" -q -h "$dir/sock" -p "$port" -U "$VK_PG_OS_USER"; then
        vk_pg_log "the server (pid $pid) is not ready after $timeout s"
        vk_pg_tail "$dir/server.log"
        vk_pg_stop "$dir"
        return 1
    fi

    pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    (
        umask 077
        echo "*:*:*:$VK_PG_ROLE:$pw" >"$dir/passfile"
        printf '%s\n' "$pw" >"$dir/password"
    )
    # The password goes to psql on stdin, never on a command line.
    if ! vk_pg_psql "$dir" -d postgres >"$dir/setup.log" 2>&1 <<EOF; then
CREATE ROLE $VK_PG_ROLE LOGIN CREATEDB PASSWORD '$pw';
CREATE DATABASE $VK_PG_ROLE OWNER $VK_PG_ROLE TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';
EOF
        vk_pg_log "cannot create the test role and database"
        vk_pg_tail "$dir/setup.log"
        vk_pg_stop "$dir"
        return 1
    fi
    # Single-quoted values: a shell can source the file (the URLs hold '&'),
    # and the C tests strip the quotes.
    cat >"$dir/env" <<EOF
VK_PG_URL='postgresql://$VK_PG_ROLE@/$VK_PG_ROLE?host=$dir/sock&port=$port'
VK_PG_TCP_URL='postgresql://$VK_PG_ROLE@127.0.0.1:$port/$VK_PG_ROLE'
VK_PG_PASSFILE='$dir/passfile'
VK_PG_PASSWORD_FILE='$dir/password'
VK_PG_ADMIN_URL='postgresql://$VK_PG_OS_USER@/postgres?host=$dir/sock&port=$port'
VK_PG_HOST='$dir/sock'
VK_PG_PORT='$port'
VK_PG_USER='$VK_PG_ROLE'
VK_PG_DB='$VK_PG_ROLE'
VK_PG_DIR='$dir'
VK_PG_PID='$pid'
EOF
    vk_pg_log "PostgreSQL (pid $pid) listens on $dir/sock and 127.0.0.1:$port"
    return 0
}

vk_pg_env() {
    local dir=${1:?usage: vk_pg_env DIR}
    cat "$dir/env"
}

# vk_pg_stop DIR: fast shutdown (SIGINT) of the server by its pid, SIGKILL
# after 30 s, then remove DIR and release the port.
vk_pg_stop() {
    local dir=${1:?usage: vk_pg_stop DIR} pid port i
    [ -d "$dir" ] || return 0
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    if vk_pg_alive "$pid"; then
        kill -INT "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            vk_pg_alive "$pid" || break
            sleep 0.1
        done
        if vk_pg_alive "$pid"; then
            vk_pg_log "the server (pid $pid) did not stop in 30 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    port=$(cat "$dir/port" 2>/dev/null || true)
    [ -n "$port" ] && rmdir "$VK_PG_PORT_DIR/$port" 2>/dev/null
    rm -rf "$dir"
    return 0
}

# vk_pg_e2e_catalog [OWNER]: for the end-to-end tests (after harness.sh): the
# server VK_PG_ENV names, else one of the test's own (root), a fresh
# database in it dropped on exit, and VK_PG_CATALOG, its URL with a 0600
# passfile owned by the OS user OWNER (default root).  Sets the VK_PG_*
# variables of the env file, and vk_pg_sql SQL runs SQL on that database
# as the superuser (unaligned, tuples only).
vk_pg_e2e_catalog() {
    local owner=${1:-root} dir
    if [ -z "${VK_PG_ENV:-}" ]; then
        vk_require_root_or_skip
        dir=$(mktemp -d /tmp/vkpg.XXXXXX) && rmdir "$dir" || vk_fail "mktemp failed"
        vk_on_exit "vk_pg_stop '$dir'"
        vk_pg_start "$dir" || vk_fail "PostgreSQL did not start"
        VK_PG_ENV=$dir/env
    fi
    set -a
    # shellcheck disable=SC1090
    . "$VK_PG_ENV"
    set +a
    VK_PG_TEST_DB=vk_$$_$RANDOM
    "$VK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$VK_PG_ADMIN_URL" \
        -c "CREATE DATABASE $VK_PG_TEST_DB OWNER $VK_PG_USER TEMPLATE template0" ||
        vk_fail "cannot create database $VK_PG_TEST_DB"
    vk_on_exit "'$VK_PG_BIN/psql' -X -q -d '$VK_PG_ADMIN_URL' -c 'DROP DATABASE IF EXISTS $VK_PG_TEST_DB WITH (FORCE)'"
    install -m 0600 -o "$owner" "$VK_PG_PASSFILE" "$VK_SCRATCH/pgpass" || vk_fail "cannot copy the passfile"
    VK_PG_CATALOG="postgresql://$VK_PG_USER@/$VK_PG_TEST_DB?host=$VK_PG_HOST&port=$VK_PG_PORT&passfile=$VK_SCRATCH/pgpass"
}

vk_pg_sql() {
    "$VK_PG_BIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 \
        -d "postgresql://$VK_PG_OS_USER@/$VK_PG_TEST_DB?host=$VK_PG_HOST&port=$VK_PG_PORT" -c "$1"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case ${1:-} in
    start) vk_pg_start "${2:?usage: pg.sh start DIR}" ;;
    env) vk_pg_env "${2:?usage: pg.sh env DIR}" ;;
    stop) vk_pg_stop "${2:?usage: pg.sh stop DIR}" ;;
    *)
        echo "usage: $0 start|env|stop DIR" >&2
        exit 2
        ;;
    esac
fi
