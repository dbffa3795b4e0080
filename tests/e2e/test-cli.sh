#!/bin/bash
# End-to-end test of the virtkeep command line: help, version, config check,
# targets, global options and exit codes; then the same paths under valgrind.
# Needs no services, so it also runs under make distcheck.
set -euo pipefail

: "${abs_top_builddir:?run the test through make check, or set abs_top_builddir}"
VK="$abs_top_builddir/src/virtkeep"
[ -x "$VK" ] || { echo "test-cli: $VK is not built" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vk-test-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
chmod 0755 "$T"
failures=0
VALGRIND=()

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# run EXPECTED_STATUS ARGS...: run virtkeep, keep stdout and stderr in
# $T/out and $T/err, and check the exit status.
run() {
    local want=$1 rc=0
    shift
    "${VALGRIND[@]}" "$VK" "$@" >"$T/out" 2>"$T/err" || rc=$?
    if [ "$rc" != "$want" ]; then
        fail "virtkeep $*: exit status $rc, expected $want"
        sed 's/^/  stdout: /' "$T/out" >&2
        sed 's/^/  stderr: /' "$T/err" >&2
    fi
}

# has FILE TEXT: FILE contains the fixed string TEXT.
has() {
    grep -qF -- "$2" "$T/$1" || { fail "$1 of the last command lacks '$2'"; sed 's/^/  | /' "$T/$1" >&2; }
}
lacks() {
    if grep -qF -- "$2" "$T/$1"; then fail "$1 of the last command has '$2'"; fi
}
empty() {
    [ ! -s "$T/$1" ] || { fail "$1 of the last command is not empty"; sed 's/^/  | /' "$T/$1" >&2; }
}

# json_check PYTHON-EXPRESSION: stdout is valid JSON and the expression on
# it (bound to j) is true.
json_check() {
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
' "$T/out" "$1" || { fail "JSON check failed: $1"; sed 's/^/  | /' "$T/out" >&2; }
}

mkdir -p "$T/store"
cat >"$T/good.conf" <<EOF
; a configuration for the test
[target here]
url = file://$T/store

[target gone]
url = $T/nonexistent

[policy gold]
rpo = 1h
keep_last = 7
targets = here, gone

[domain web1]
policy = gold
EOF
cat >"$T/reachable.conf" <<EOF
[target here]
url = file://$T/store
EOF
printf '[policy gold]\nrto = 30m\nrpo = 1x\n' >"$T/bad-value.conf"
printf '[target a]\nurl = /srv\nnot a key value line\n' >"$T/bad-syntax.conf"
printf '[target a]\nurl = ftp://host/x\n' >"$T/bad-scheme.conf"

check_all() {
    # Help and version.
    run 0 --help
    for text in "Usage: virtkeep [GLOBAL OPTIONS] COMMAND [ARGS]" "--connect URI" "--config FILE" \
        "--catalog PATH" "--quiet" "--verbose" "config check" "targets" "Exit status:" \
        "130  interrupted" "5    some targets are unreachable" "VIRTKEEP_DEBUG" \
        "LIBVIRT_DEFAULT_URI" "XDG_CONFIG_HOME" "XDG_DATA_HOME" "/etc/virtkeep/virtkeep.conf"; do
        has out "$text"
    done
    empty err
    version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$abs_top_builddir/config.h")
    run 0 --version
    [ "$(cat "$T/out")" = "virtkeep $version" ] || fail "--version printed '$(cat "$T/out")'"
    run 0 version
    [ "$(cat "$T/out")" = "virtkeep $version" ] || fail "version printed '$(cat "$T/out")'"
    run 0 help config
    has out "config check [--json] [FILE]"
    has out "Exit status: 0 when the file is valid, 2"
    run 0 help targets
    has out "targets [--json] [URL...]"
    run 2 help nosuch
    has err "virtkeep: unknown command 'nosuch'"

    # Usage errors.
    run 2
    has err "virtkeep: no command given"
    run 2 frobnicate
    has err "virtkeep: unknown command 'frobnicate'"
    has err "Try 'virtkeep --help'."
    run 2 --no-such-option targets
    run 2 targets --config "$T/good.conf" # global options go before the command
    run 2 config
    run 2 config lint

    # config check.
    run 0 config check "$T/good.conf"
    [ "$(cat "$T/out")" = "$T/good.conf: OK (2 targets, 1 policy, 1 domain)" ] ||
        fail "config check printed '$(cat "$T/out")'"
    run 0 --config "$T/good.conf" config check
    has out "$T/good.conf: OK"
    run 2 config check "$T/bad-value.conf"
    empty out
    has err "virtkeep: $T/bad-value.conf:3: [policy gold] rpo: invalid duration '1x': expected"
    [ "$(wc -l <"$T/err")" = 1 ] || fail "the error was not printed exactly once"
    run 2 config check "$T/bad-syntax.conf"
    has err "virtkeep: $T/bad-syntax.conf:3: expected KEY = VALUE"
    run 2 config check "$T/bad-scheme.conf"
    has err "$T/bad-scheme.conf:2: [target a] url: unknown scheme 'ftp'"
    run 2 config check "$T/missing.conf"
    has err "virtkeep: cannot read configuration file '$T/missing.conf'"
    run 0 config check --json "$T/good.conf"
    json_check 'j["valid"] is True and j["targets"] == 2 and j["policies"] == 1 and j["domains"] == 1'
    run 2 config check --json "$T/bad-value.conf"
    json_check 'j["valid"] is False and j["error"]["line"] == 3 and "rpo" in j["error"]["message"]'
    empty err

    # An explicit --config that does not exist is an error.
    run 2 --config "$T/missing.conf" targets
    has err "virtkeep: cannot read configuration file '$T/missing.conf'"
    run 2 --config "$T/bad-value.conf" targets
    has err ":3: [policy gold] rpo"

    # targets: one reachable, one not.
    run 5 --config "$T/good.conf" targets
    has out "here"
    has out "reachable    file://$T/store"
    has out "gone"
    has out "unreachable  $T/nonexistent"
    run 0 --config "$T/reachable.conf" targets
    lacks out "unreachable"
    run 5 --config "$T/good.conf" targets --json
    json_check '[t["name"] for t in j["targets"]] == ["here", "gone"] and j["unreachable"] == 1'
    json_check 'j["targets"][0]["reachable"] is True and j["targets"][0]["scheme"] == "file"'
    json_check 'j["targets"][1]["reachable"] is False and "nonexistent" in j["targets"][1]["error"]'
    # JSON stays alone on stdout, even with debugging on.
    VIRTKEEP_DEBUG=1 run 0 -v --config "$T/reachable.conf" targets --json "file://$T/store"
    json_check 'len(j["targets"]) == 2 and j["targets"][1]["name"] is None'
    has err "virtkeep: debug:"
    run 0 -q --config "$T/reachable.conf" targets
    has out "here"

    # URLs on the command line, without any configuration file.
    run 0 --config "$T/reachable.conf" targets "$T/store"
    run 5 --config "$T/reachable.conf" targets "file://$T/nonexistent"
    has out "unreachable  file://$T/nonexistent"
    run 3 --config "$T/reachable.conf" targets nosuchtarget
    has err "virtkeep: unknown target 'nosuchtarget'"
    run 2 --config "$T/reachable.conf" targets "ftp://host/x"
    has err "unknown scheme 'ftp'"
    run 2 --config "$T/reachable.conf" targets "ssh://user:secret@host/x"
    if [ "$(id -u)" = 0 ]; then
        if [ -e /etc/virtkeep/virtkeep.conf ]; then
            echo "test-cli: /etc/virtkeep/virtkeep.conf exists: root's no-config run not checked" >&2
        else
            run 0 targets "file://$T/store"
            has out "reachable    file://$T/store"
            run 2 config check # checking the missing default file is an error
        fi
    fi
}

check_no_config_user() {
    # As an ordinary user, the default configuration is under XDG_CONFIG_HOME.
    local as_user=()
    if [ "$(id -u)" = 0 ]; then
        command -v setpriv >/dev/null || { echo "test-cli: no setpriv: user defaults not checked" >&2; return; }
        as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    fi
    mkdir -p "$T/xdg/virtkeep" "$T/userstore"
    chmod -R a+rwX "$T/xdg" "$T/userstore"
    local rc=0
    XDG_CONFIG_HOME="$T/xdg" "${as_user[@]}" "${VALGRIND[@]}" "$VK" targets "file://$T/userstore" \
        >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 0 ] || { fail "no-config targets as a user: exit $rc"; cat "$T/err" >&2; }
    has out "reachable    file://$T/userstore"
    cp "$T/bad-value.conf" "$T/xdg/virtkeep/virtkeep.conf"
    chmod a+r "$T/xdg/virtkeep/virtkeep.conf"
    rc=0
    XDG_CONFIG_HOME="$T/xdg" "${as_user[@]}" "${VALGRIND[@]}" "$VK" targets >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || fail "a bad default configuration gave exit $rc, expected 2"
    has err "$T/xdg/virtkeep/virtkeep.conf:3: [policy gold] rpo"
    rm -f "$T/xdg/virtkeep/virtkeep.conf"
}

check_all
check_no_config_user
echo "test-cli: plain run done, $failures failure(s)"

if command -v valgrind >/dev/null 2>&1; then
    VALGRIND=(valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible
        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99)
    check_all
    check_no_config_user
    echo "test-cli: valgrind run done, $failures failure(s)"
else
    echo "test-cli: valgrind is not installed: the valgrind part is skipped" >&2
fi

[ "$failures" = 0 ] || exit 1
echo "test-cli: PASS"
