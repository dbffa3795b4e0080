#!/bin/bash
# virtkeep - the scheduling simulation (tests/bench/fleet-sim.c) on SQLite
# (one host's file) and on PostgreSQL (the fleet catalog, tests/lib/pg.sh:
# the server VK_PG_ENV names, else one of its own; needs root then):
# 1,000 domains, 4 scheduler processes, 10 simulated days by default.
# Prints a table of claim latency and tick time at p50 and p99, and writes
# BUILDDIR/tests/bench/fleet-sim.json.  Exit status 1 when a domain was
# claimed twice or an RPO was missed.
#
#   tests/bench/fleet-sim.sh BUILDDIR [DOMAINS [PROCS [DAYS]]]
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=$(cd "${1:?usage: fleet-sim.sh BUILDDIR [DOMAINS [PROCS [DAYS]]]}" && pwd)
DOMAINS=${2:-1000}
PROCS=${3:-4}
DAYS=${4:-10}
BIN=$B/tests/bench/fleet-sim
OUT=$B/tests/bench/fleet-sim.json
. "$SRC/tests/lib/pg.sh"

mkdir -p "$B/tests/bench"
# shellcheck disable=SC2046
gcc -O2 -g -std=gnu11 -pthread -I"$B" -I"$SRC" $(pkg-config --cflags json-c libpq) -o "$BIN" \
    "$SRC/tests/bench/fleet-sim.c" "$B/catalog/libcatalog.a" "$B/common/libcommon.a" \
    -lsqlite3 -lpq -ljson-c -lcrypto

T=$(mktemp -d /tmp/fleetsim.XXXXXX)
chmod 0755 "$T" # the server (user postgres) lives in T/pg
pgdir=
cleanup() {
    [ -z "$pgdir" ] || vk_pg_stop "$pgdir"
    rm -rf "$T"
}
trap cleanup EXIT
if [ -z "${VK_PG_ENV:-}" ]; then
    pgdir=$T/pg
    vk_pg_start "$pgdir" >&2
    VK_PG_ENV=$pgdir/env
fi
set -a
. "$VK_PG_ENV"
set +a
db=fleetsim_$$
"$VK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$VK_PG_ADMIN_URL" \
    -c "CREATE DATABASE $db OWNER $VK_PG_USER TEMPLATE template0"
pgurl="postgresql://$VK_PG_USER@/$db?host=$VK_PG_HOST&port=$VK_PG_PORT&passfile=$VK_PG_PASSFILE"

rc=0
echo "fleet-sim: $DOMAINS domains, $PROCS schedulers, $DAYS simulated days" >&2
"$BIN" "$T/catalog.db" "$DOMAINS" "$PROCS" "$DAYS" >"$T/sqlite.json" || rc=1
"$BIN" "$pgurl" "$DOMAINS" "$PROCS" "$DAYS" >"$T/pg.json" || rc=1
"$VK_PG_BIN/psql" -X -q -d "$VK_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
jq -s '{sqlite: .[0], postgresql: .[1]}' "$T/sqlite.json" "$T/pg.json" >"$OUT"
printf '%-12s %10s %10s %10s %10s %8s %8s %8s %8s\n' catalog "claim p50" "claim p99" "tick p50" \
    "tick p99" claims twice "rpo miss" wall
for k in sqlite postgresql; do
    jq -r --arg k "$k" '.[$k] | [$k, "\(.claim_us_p50)us", "\(.claim_us_p99)us",
        "\(.tick_ms_p50)ms", "\(.tick_ms_p99)ms", .claims_won, .claimed_twice, .rpo_misses,
        "\(.wall_seconds)s"] | @tsv' "$OUT" |
        awk -F'\t' '{printf "%-12s %10s %10s %10s %10s %8s %8s %8s %8s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
done
exit $rc
