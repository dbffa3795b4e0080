#!/bin/bash
# The module rule (scripts/check-includes): the tree keeps it, and the rule
# itself fails on each kind of forbidden include, shown on a copy of the tree.
set -euo pipefail
: "${abs_top_srcdir:?}"
CHECK=$abs_top_srcdir/scripts/check-includes

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is needed by scripts/check-includes"

# 1. The tree as it is.
"$CHECK" "$abs_top_srcdir" || fail "the tree breaks the module rule (see above)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
copy_tree() {
    rm -rf "$TMP/t"
    mkdir -p "$TMP/t"
    (cd "$abs_top_srcdir" && cp -r src common transport catalog "$TMP/t/")
}

# expect_refused FILE LINE PATTERN: adding LINE to FILE makes the check fail
# with a message matching PATTERN that names FILE.
expect_refused() {
    local file=$1 line=$2 pattern=$3 rc=0
    copy_tree
    printf '%s\n' "$line" >>"$TMP/t/$file"
    "$CHECK" "$TMP/t" 2>"$TMP/err" || rc=$?
    [ "$rc" = 1 ] || fail "adding '$line' to $file: exit $rc, expected 1"
    grep -q "^$file:[0-9]*: $line: .*$pattern" "$TMP/err" ||
        fail "adding '$line' to $file: no message matching '$pattern' in: $(cat "$TMP/err")"
    echo "refused as expected: $file: $line"
}

# 2. Upwards: a lower module including a higher one.
expect_refused src/format/manifest.c '#include "src/cli/cli.h"' 'format may not include cli'
expect_refused src/reader/reader-merge.c '#include "src/restore/restore.h"' \
    'reader may not include restore'
expect_refused common/util.c '#include "catalog/catalog.h"' 'common may not include catalog'
# 3. Another folder's -int.h.
expect_refused src/plan/plan.c '#include "src/restore/restore-int.h"' 'is for the files of'
expect_refused src/cli/cli.c '#include "transport/transport-int.h"' 'is for the files of'
# 4. A header of another module that is not its door.
printf '/* a second header */\n' >"$TMP/extra.h"
copy_tree
cp "$TMP/extra.h" "$TMP/t/src/virt/virt-extra.h"
printf '#include "src/virt/virt-extra.h"\n' >>"$TMP/t/src/backup/backup.c"
rc=0
"$CHECK" "$TMP/t" 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q 'include the door of virt/' "$TMP/err" ||
    fail "a non-door header was not refused: $(cat "$TMP/err")"
echo "refused as expected: a header that is not the door"
# 5. An include within a module, and a door from an allowed module, pass.
copy_tree
printf '#include "src/restore/restore-int.h"\n#include "src/reader/reader.h"\n' \
    >>"$TMP/t/src/restore/restore.c"
"$CHECK" "$TMP/t" || fail "allowed includes were refused"

# 6. The report runs and finds no cycle between modules.
"$CHECK" --report "$abs_top_srcdir" >"$TMP/report"
grep -q '^modules: .* 0 cycles' "$TMP/report" || fail "module cycles: $(cat "$TMP/report")"
echo "ok"
