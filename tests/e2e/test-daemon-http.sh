#!/bin/bash
# End-to-end: virtkeepd's HTTP listener ([daemon] listen + token_file) and
# who gets the bearer token.  No domain is needed: the daemon runs with an
# empty schedule.
#   - 40 idle connections held open by an unprivileged user (nobody) do not
#     lock root out: an authorized request (curl, and `virtkeep status
#     --url`) is answered within 5 s, and the idle connections are closed
#     within a few seconds;
#   - SIGHUP with a configuration whose listen port is taken keeps the API
#     answering, on the unix socket and on the old port; a later SIGHUP
#     with a free port moves the listener there;
#   - with virtkeepd stopped and an unprivileged process listening on the
#     configured port (recording what it receives), `virtkeep status` and
#     `virtkeep jobs` fall back to the catalog and send it nothing; with
#     the address given (--url, VIRTKEEP_DAEMON_URL) they refuse to send
#     the token to it and say why;
#   - SIGTERM stops the daemon with exit status 0.
. "$abs_top_srcdir/tests/lib/harness.sh"

vk_require_root_or_skip
vk_require_cmd curl jq setpriv
PY=/usr/bin/python3 # run as nobody: not a python under /root
[ -x "$PY" ] || vk_skip "no $PY"
id nobody >/dev/null 2>&1 || vk_skip "no user nobody"
VK=$abs_top_builddir/src/virtkeep
VKD=$abs_top_builddir/src/virtkeepd
[ -x "$VK" ] && [ -x "$VKD" ] || vk_fail "virtkeep and virtkeepd are not built"

conf=$VK_SCRATCH/virtkeep.conf
sock=$VK_SCRATCH/virtkeepd.sock
log=$VK_SCRATCH/virtkeepd.log
token=tok-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && echo "$token" >"$VK_SCRATCH/token")
vk_free_port
port=$VK_PORT
write_conf() { # LISTEN_PORT
    cat >"$conf" <<EOF
[catalog]
path = $VK_SCRATCH/catalog.db

[daemon]
socket = $sock
listen = 127.0.0.1:$1
token_file = $VK_SCRATCH/token
EOF
}
write_conf "$port"
vk() { "$VK" --config "$conf" "$@"; }
vk_expect_eq() { [ "$1" = "$2" ] || vk_fail "$3: expected '$2', got '$1'"; }
auth=(-H "Authorization: Bearer $token")
code() { # curl ARGS: the HTTP status ("000": no answer)
    curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" || true
}
sock_ok() { [ "$(code --unix-socket "$sock" http://localhost/v1/health)" = 200 ]; }
tcp_ok() { [ "$(code "${auth[@]}" "http://127.0.0.1:$1/v1/health")" = 200 ]; }

# Helpers run as nobody, from a directory it can read and write.
run=$VK_SCRATCH/nobody
mkdir -m 0777 "$run"
cat >"$run/idle.py" <<'EOF'
# idle.py PORT N SECONDS: open N connections, send nothing; after SECONDS
# print how many the server has not closed.
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conns = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(0.3)
    try:
        s.connect(("127.0.0.1", port))
        conns.append(s)
    except OSError:
        pass
print("connected %d" % len(conns), flush=True)
time.sleep(secs)
still = 0
for s in conns:
    s.setblocking(False)
    try:
        still += s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        still += 1
    except OSError:
        pass
print("open %d" % still, flush=True)
EOF
cat >"$run/fake.py" <<'EOF'
# fake.py PORT LOG: an HTTP server that is not virtkeepd; it appends every
# byte it receives to LOG and answers 200 with a JSON body.
import socket, sys
port, log = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
print("listening", flush=True)
body = b'{"now": 1, "daemon": true, "violations": 0, "domains": [], "active": [], "recent": []}'
while True:
    c, _ = srv.accept()
    c.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    with open(log, "ab") as f:
        f.write(b"--- connection\n" + data)
    try:
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    c.close()
EOF
chmod 0644 "$run"/*.py
# A simple command, and setpriv execs: $! of "${as_nobody[@]}" ... & is the
# python process itself, which the test can kill.
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups "$PY")

"$VKD" --config "$conf" --tick 1 >"$log" 2>&1 &
DPID=$!
vk_on_exit "kill -9 $DPID 2>/dev/null || true"
dlog() { sed 's/^/  virtkeepd: /' "$log" >&2; }
vk_wait_for 30 sock_ok || {
    dlog
    vk_fail "virtkeepd does not answer on its socket"
}
tcp_ok "$port" || vk_fail "virtkeepd does not answer on 127.0.0.1:$port with the token"

# ---- 40 idle connections of an unprivileged user ----------------------------
"${as_nobody[@]}" "$run/idle.py" "$port" 40 8 >"$VK_SCRATCH/idle.out" 2>&1 &
idle=$!
vk_wait_for 10 grep -q connected "$VK_SCRATCH/idle.out" || vk_fail "idle.py did not connect"
t0=$(date +%s%N)
vk_expect_eq "$(code "${auth[@]}" "http://127.0.0.1:$port/v1/health")" 200 \
    "an authorized request while 40 idle connections are open"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 5000 ] || vk_fail "the authorized request took $ms ms"
vk status --url "http://127.0.0.1:$port" --json >"$VK_SCRATCH/st.json" \
    2>"$VK_SCRATCH/st.err" || vk_fail "status --url failed: $(cat "$VK_SCRATCH/st.err")"
vk_expect_eq "$(jq -r .daemon "$VK_SCRATCH/st.json")" true "status --url answered by virtkeepd"
sock_ok || vk_fail "the socket does not answer while the idle connections are open"
wait "$idle" || true
vk_expect_eq "$(sed -n 's/^open //p' "$VK_SCRATCH/idle.out")" 0 \
    "idle connections left open after 8 s ($(tr '\n' ' ' <"$VK_SCRATCH/idle.out"))"
vk_log "an authorized request was answered in $ms ms with 40 idle connections open"

# ---- SIGHUP with the new listen port taken -------------------------------------
vk_free_port
taken=$VK_PORT
"${as_nobody[@]}" "$run/fake.py" "$taken" "$run/taken.log" >"$VK_SCRATCH/taken.out" 2>&1 &
holder=$!
vk_on_exit "kill $holder 2>/dev/null || true"
vk_wait_for 10 grep -q listening "$VK_SCRATCH/taken.out" || vk_fail "cannot take port $taken"
write_conf "$taken"
kill -HUP "$DPID"
reload_failed() { grep -q "cannot .*control API" "$log"; }
vk_wait_for 10 reload_failed || {
    dlog
    vk_fail "virtkeepd did not report the taken port"
}
kill -0 "$DPID" || vk_fail "virtkeepd died on SIGHUP"
sock_ok || {
    dlog
    vk_fail "the socket stopped answering after SIGHUP with a taken port"
}
tcp_ok "$port" || vk_fail "the old listener ($port) stopped after SIGHUP with a taken port"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
if grep -q "$token" "$run/taken.log" 2>/dev/null; then vk_fail "the taken port got the token"; fi

# A free port: the listener moves there.
vk_free_port
moved=$VK_PORT
write_conf "$moved"
kill -HUP "$DPID"
vk_wait_for 10 tcp_ok "$moved" || {
    dlog
    vk_fail "the listener did not move to port $moved after SIGHUP"
}
vk_expect_eq "$(code "${auth[@]}" "http://127.0.0.1:$port/v1/health")" 000 "the old port after moving"
sock_ok || vk_fail "the socket stopped answering after the listener moved"

kill -TERM "$DPID"
vk_wait_for 30 bash -c "! kill -0 $DPID" || vk_fail "virtkeepd did not stop on SIGTERM"
rc=0
wait "$DPID" || rc=$?
vk_expect_eq "$rc" 0 "exit status of virtkeepd on SIGTERM"

# ---- the daemon is stopped; someone else holds its port ---------------------
"${as_nobody[@]}" "$run/fake.py" "$moved" "$run/fake.log" >"$VK_SCRATCH/fake.out" 2>&1 &
fake=$!
vk_on_exit "kill $fake 2>/dev/null || true"
vk_wait_for 10 grep -q listening "$VK_SCRATCH/fake.out" || vk_fail "the fake server did not start"
no_token() { # WHAT: the fake server got neither the token nor an Authorization header
    if grep -qaF "$token" "$run/fake.log" 2>/dev/null; then
        vk_fail "$1 sent the token to the fake server"
    fi
    if grep -qai "authorization" "$run/fake.log" 2>/dev/null; then
        vk_fail "$1 sent an Authorization header to the fake server"
    fi
}

rc=0
vk status --json >"$VK_SCRATCH/st.json" 2>"$VK_SCRATCH/st.err" || rc=$?
no_token "virtkeep status"
vk_expect_eq "$rc" 0 "exit status of status without a daemon"
grep -q "virtkeepd is not running" "$VK_SCRATCH/st.err" ||
    vk_fail "status did not fall back to the catalog: $(cat "$VK_SCRATCH/st.err")"
vk_expect_eq "$(jq -r .daemon "$VK_SCRATCH/st.json")" false "status offline"
vk jobs --json >"$VK_SCRATCH/jobs.json" 2>"$VK_SCRATCH/jobs.err" ||
    vk_fail "jobs failed: $(cat "$VK_SCRATCH/jobs.err")"
no_token "virtkeep jobs"
vk_expect_eq "$(jq -r .daemon "$VK_SCRATCH/jobs.json")" false "jobs offline"

# Asked explicitly: the token is still not sent to a server run by nobody.
rc=0
vk status --url "http://127.0.0.1:$moved" >/dev/null 2>"$VK_SCRATCH/st.err" || rc=$?
no_token "virtkeep status --url"
[ "$rc" != 0 ] || vk_fail "status --url to the fake server succeeded"
grep -q "not sending the token" "$VK_SCRATCH/st.err" ||
    vk_fail "status --url does not say why: $(cat "$VK_SCRATCH/st.err")"
rc=0
VIRTKEEP_DAEMON_URL=127.0.0.1:$moved vk jobs >/dev/null 2>"$VK_SCRATCH/jobs.err" || rc=$?
no_token "virtkeep jobs with VIRTKEEP_DAEMON_URL"
[ "$rc" != 0 ] || vk_fail "jobs with VIRTKEEP_DAEMON_URL to the fake server succeeded"
grep -q "not sending the token" "$VK_SCRATCH/jobs.err" ||
    vk_fail "jobs does not say why: $(cat "$VK_SCRATCH/jobs.err")"
vk_log "PASS: no lock-out by idle connections, SIGHUP keeps the API, no token for an impostor"
