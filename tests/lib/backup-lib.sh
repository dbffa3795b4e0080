# shellcheck shell=bash
# virtkeep - helpers for the backup end-to-end tests (test-backup-*.sh).
# Source it after tests/lib/harness.sh:
#
#     . "$abs_top_srcdir/tests/lib/harness.sh"
#     . "$abs_top_srcdir/tests/lib/backup-lib.sh"
#     vk_bk_setup
#
# Every test gets its own configuration file, catalog and target directory
# under $VK_SCRATCH.  The target "main" is file://$VK_BK_TARGET.
# VK_TEST_CATALOG_URL=postgresql://... runs the test on that (fresh,
# empty) PostgreSQL catalog instead of an SQLite file, by hand: tests that
# read the catalog with sqlite3 then fail.

VK_BIN=$abs_top_builddir/src/virtkeep
VK_BK_TIMEOUT=${VK_BK_TIMEOUT:-180}
M=$((1 << 20))

# vk_bk_setup: libvirtd, the tools the checks use, config, catalog, target.
vk_bk_setup() {
    vk_start_libvirtd
    vk_require_cmd jq zstd tar qemu-img qemu-io python3 timeout
    [ -x "$VK_BIN" ] || vk_fail "'$VK_BIN' is not built"
    "$VK_BIN" help backup >/dev/null 2>&1 || vk_fail "virtkeep has no 'backup' command"
    VK_BK_CATALOG=${VK_TEST_CATALOG_URL:-$VK_SCRATCH/catalog.db}
    VK_BK_CONFIG=$VK_SCRATCH/virtkeep.conf
    VK_BK_TARGET=$VK_SCRATCH/target
    VK_BK_N=0
    mkdir -p "$VK_BK_TARGET"
    case $VK_BK_CATALOG in
    postgresql://* | postgres://*) printf '[catalog]\nurl = %s\n' "$VK_BK_CATALOG" ;;
    *) printf '[catalog]\npath = %s\n' "$VK_BK_CATALOG" ;;
    esac >"$VK_BK_CONFIG"
    vk_bk_add_target main "$VK_BK_TARGET"
}

# vk_bk_add_target NAME DIR: define the target NAME as file://DIR.
vk_bk_add_target() {
    printf '\n[target %s]\nurl = file://%s\n' "$1" "$2" >>"$VK_BK_CONFIG"
}

# vk_vk ARGS...: virtkeep with this test's configuration and catalog.
vk_vk() {
    "$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" "$@"
}

# vk_backup WANT_RC DOMAIN ARGS...: run `virtkeep backup DOMAIN ARGS --json`
# (with --target main unless ARGS name a target) and check its exit status.
# WANT_RC "fail" accepts 1 (failed), 2 (usage) and 3 (not found).
# Stdout lands in $VK_BK_OUT, stderr in $VK_BK_ERR (one pair of files per
# run, numbered, so that earlier results stay readable).
vk_backup() {
    local want=$1 dom=$2 rc=0 args
    shift 2
    args=("$@")
    case " $* " in
    *" --target "*) ;;
    *) args+=(--target main) ;;
    esac
    VK_BK_N=$((VK_BK_N + 1))
    VK_BK_OUT=$VK_SCRATCH/backup-$VK_BK_N.json
    VK_BK_ERR=$VK_SCRATCH/backup-$VK_BK_N.err
    timeout "$VK_BK_TIMEOUT" "$VK_BIN" --config "$VK_BK_CONFIG" --catalog "$VK_BK_CATALOG" \
        backup "$dom" "${args[@]}" --json >"$VK_BK_OUT" 2>"$VK_BK_ERR" || rc=$?
    if [ "$want" = fail ] && [ "$rc" -ge 1 ] && [ "$rc" -le 3 ]; then
        want=$rc
    fi
    if [ "$rc" != "$want" ]; then
        vk_log "virtkeep backup $dom ${args[*]} --json: exit status $rc, expected $want"
        sed 's/^/  stdout: /' "$VK_BK_OUT" >&2
        sed 's/^/  stderr: /' "$VK_BK_ERR" >&2
        vk_fail "unexpected exit status of a backup of '$dom'"
    fi
    if [ "$want" = 0 ]; then
        jq -e . "$VK_BK_OUT" >/dev/null || vk_fail "backup of '$dom' printed no valid JSON"
    fi
}

# vk_bk FILTER: a value of the last backup's JSON (jq -r).
vk_bk() {
    jq -r "$1" "$VK_BK_OUT"
}

# vk_has_line TEXT LINE: TEXT has the line LINE.  (Not "cmd | grep -q":
# under pipefail, grep quitting early can fail the pipeline.)
vk_has_line() {
    grep -qxF -- "$2" <<<"$1"
}

vk_expect_eq() {
    [ "$1" = "$2" ] || vk_fail "$3: expected '$2', got '$1'"
}

# vk_expect_grep FILE ERE WHAT: FILE has a line matching ERE (case-insensitive).
vk_expect_grep() {
    grep -Eqi -- "$2" "$1" || {
        sed 's/^/  | /' "$1" >&2
        vk_fail "$3: no line matches /$2/"
    }
}

# vk_bk_check_committed DOMAIN LEVEL [PARENT]: the last backup's JSON says
# committed at LEVEL (and PARENT, "null" for none), and its objects are on
# the main target: DOMAIN/ID/DISK.tar for each disk and the manifest.
vk_bk_check_committed() {
    local dom=$1 level=$2 parent=${3:-} id d dir
    id=$(vk_bk .backup)
    [ -n "$id" ] && [ "$id" != null ] || vk_fail "the backup JSON has no id"
    vk_expect_eq "$(vk_bk .status)" committed "status of backup $id"
    vk_expect_eq "$(vk_bk .domain)" "$dom" "domain of backup $id"
    vk_expect_eq "$(vk_bk .level)" "$level" "level of backup $id"
    [ -z "$parent" ] || vk_expect_eq "$(vk_bk .parent)" "$parent" "parent of backup $id"
    dir=${VK_BK_TARGET_DIR:-$VK_BK_TARGET}/$dom/$id
    [ -f "$dir/manifest.json" ] || vk_fail "no manifest.json in '$dir'"
    vk_expect_eq "$(vk_bk .manifest_key)" "$dom/$id/manifest.json" "manifest key of $id"
    for d in $(vk_bk '.disks[].disk'); do
        [ -f "$dir/$d.tar" ] || vk_fail "no $d.tar in '$dir'"
        vk_expect_eq "$(vk_bk ".disks[] | select(.disk == \"$d\") | .key")" "$dom/$id/$d.tar" \
            "key of disk $d of $id"
        vk_expect_eq "$(stat -c %s "$dir/$d.tar")" \
            "$(vk_bk ".disks[] | select(.disk == \"$d\") | .archive_size")" \
            "archive size of disk $d of $id"
        vk_expect_eq "$(sha256sum "$dir/$d.tar" | cut -d' ' -f1)" \
            "$(vk_bk ".disks[] | select(.disk == \"$d\") | .sha256")" \
            "sha256 of disk $d of $id"
    done
}

# vk_list DOMAIN: `virtkeep list DOMAIN --json` into $VK_SCRATCH/list.json.
vk_list() {
    vk_vk list "$1" --json >"$VK_SCRATCH/list.json" 2>"$VK_SCRATCH/list.err" ||
        vk_fail "virtkeep list $1 failed: $(cat "$VK_SCRATCH/list.err")"
}

# vk_list_get ID FIELD: FIELD of backup ID in the last list ("" if absent).
vk_list_get() {
    jq -r --arg id "$1" ".backups[] | select(.id == \$id) | .$2" "$VK_SCRATCH/list.json"
}

# vk_list_ids [STATUS]: ids in the last list (with STATUS), sorted.
vk_list_ids() {
    jq -r --arg s "${1:-}" '.backups[] | select($s == "" or .status == $s) | .id' \
        "$VK_SCRATCH/list.json" | sort
}

# Checkpoint names of a domain (virsh), sorted, one per line.
vk_checkpoints() {
    "${VK_VIRSH[@]}" checkpoint-list "$1" --name | sed '/^$/d' | sort
}

# Bitmap names stored in a qcow2 image (-U: the image may be in use).
vk_image_bitmaps() {
    qemu-img info -U --output=json "$1" |
        jq -r '.["format-specific"].data.bitmaps // [] | .[].name' | sort
}

# Dirty bitmaps QEMU holds on any block node of a running domain, sorted.
vk_qemu_bitmaps() {
    "${VK_VIRSH[@]}" qemu-monitor-command "$1" \
        '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' |
        jq -r '.return[] | .["dirty-bitmaps"] // [] | .[].name // empty' | sort -u
}

vk_domain_image() {
    echo "$VK_SCRATCH/images/$1-$2.qcow2"
}

# Every file under DIR (hidden temp files too), relative, sorted.
vk_files() {
    (cd "$1" && find . -type f | sed 's|^\./||' | sort)
}

# vk_fill_random IMAGE SIZE: random (incompressible) data over the first
# SIZE bytes of a qcow2 image whose domain is shut off.
vk_fill_random() {
    local raw=$VK_SCRATCH/random.raw
    head -c "$2" /dev/urandom >"$raw"
    qemu-img convert -n -f raw -O qcow2 "$raw" "$1"
    rm -f "$raw"
}

# vk_domain_flush NAME DISK: flush disk DISK of the running domain NAME
# (qemu-io "flush" through HMP), as a guest would before a crash: without it
# kill -9 may lose qcow2 metadata still cached in QEMU, and with it the
# writes made so far.
vk_domain_flush() {
    local qom out
    qom=/machine/peripheral/virtio-disk$(vk_disk_index "$2")/virtio-backend
    out=$("${VK_VIRSH[@]}" qemu-monitor-command "$1" --hmp "qemu-io -d $qom flush" 2>&1) ||
        vk_fail "cannot flush disk '$2' of domain '$1': $out"
    out=$(echo "$out" | tr -s '\r\n' ' ' | sed 's/ *$//')
    [ -z "$out" ] || vk_fail "cannot flush disk '$2' of domain '$1': $out"
}

vk_domain_qemu_pid() {
    cat "/var/run/libvirt/qemu/$1.pid"
}

vk_domain_is_off() {
    grep -q 'shut off' <<<"$("${VK_VIRSH[@]}" domstate "$1")"
}

# The run directory of the active pull-mode backup of DOMAIN (the directory
# of its NBD socket), or fail when there is no backup job.
vk_backup_run_dir() {
    local sock
    sock=$("${VK_VIRSH[@]}" backup-dumpxml "$1" 2>/dev/null |
        sed -n "s/.*<server[^>]*socket='\([^']*\)'.*/\1/p" | head -1)
    [ -n "$sock" ] || return 1
    dirname "$sock"
}

vk_backup_job_active() {
    vk_backup_run_dir "$1" >/dev/null
}

# vk_archive_check TAR REGION...: unpack TAR with plain tar and zstd (no
# virtkeep), check every data chunk against the index (length, sha256), and
# check that the data chunks cover exactly the union of the REGIONs, each
# OFFSET:LENGTH:PATTERN (bytes, PATTERN a byte such as 0xcd; "random" for
# any content), with the pattern's bytes.
vk_archive_check() {
    local tar=$1 x f
    shift
    x=$(mktemp -d "$VK_SCRATCH/x.XXXXXX")
    tar -xf "$tar" -C "$x" || vk_fail "tar cannot unpack '$tar'"
    [ -f "$x/index.json" ] || vk_fail "'$tar' has no index.json"
    for f in "$x"/data/*.zst; do
        [ -e "$f" ] || continue
        zstd -q -d "$f" -o "${f%.zst}.raw" || vk_fail "zstd cannot decompress '$f' of '$tar'"
    done
    python3 - "$x" "$tar" "$@" <<'EOF' || vk_fail "the content of '$tar' is not what was written"
import glob, hashlib, json, os, sys

x, tar, regions = sys.argv[1], sys.argv[2], sys.argv[3:]
index = json.load(open(os.path.join(x, "index.json")))
ok = True
def bad(msg):
    global ok
    print(f"{tar}: {msg}", file=sys.stderr)
    ok = False

raws = {}
for f in glob.glob(os.path.join(x, "data", "*.raw")):
    off, ln = os.path.basename(f)[:-4].split("-")
    raws[int(off, 16)] = (int(ln, 16), f)
data = [e for e in index["extents"] if e["kind"] == "data"]
if len(data) != len(raws):
    bad(f"the index lists {len(data)} data chunks, the tar holds {len(raws)}")
covered = []
for e in data:
    if e["offset"] not in raws:
        bad(f"chunk at {e['offset']} is in the index, not in the tar")
        continue
    ln, f = raws[e["offset"]]
    buf = open(f, "rb").read()
    if ln != e["length"] or len(buf) != ln:
        bad(f"chunk at {e['offset']}: name says {ln}, index {e['length']}, data {len(buf)}")
    if hashlib.sha256(buf).hexdigest() != e["sha256"]:
        bad(f"chunk at {e['offset']}: sha256 differs from the index")
    covered.append((e["offset"], e["offset"] + len(buf), f))

def merge(iv):
    out = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out

want = []
for r in regions:
    off, ln, pat = r.split(":")
    want.append((int(off), int(off) + int(ln), pat))
got_iv = merge([(a, b) for a, b, _ in covered])
want_iv = merge([(a, b) for a, b, _ in want])
if got_iv != want_iv:
    bad(f"data chunks cover {got_iv}, expected {want_iv}")
for a, b, pat in want:
    if pat == "random":
        continue
    byte = int(pat, 16)
    for ca, cb, f in covered:
        lo, hi = max(a, ca), min(b, cb)
        if lo >= hi:
            continue
        with open(f, "rb") as fh:
            fh.seek(lo - ca)
            chunk = fh.read(hi - lo)
        if chunk != bytes([byte]) * (hi - lo):
            bad(f"bytes {lo}..{hi} are not all {pat}")
sys.exit(0 if ok else 1)
EOF
    rm -rf "$x"
}

# vk_bk_start_bg DOMAIN ARGS...: start `virtkeep backup DOMAIN ARGS` in the
# background with SIGINT and SIGTERM at their default handling (a background
# job of a script would otherwise ignore SIGINT).  Sets VK_BG_PID, and
# VK_BG_OUT / VK_BG_ERR.
vk_bk_start_bg() {
    local dom=$1
    shift
    VK_BK_N=$((VK_BK_N + 1))
    VK_BG_OUT=$VK_SCRATCH/backup-$VK_BK_N.json
    VK_BG_ERR=$VK_SCRATCH/backup-$VK_BK_N.err
    env --default-signal=INT,TERM "$VK_BIN" --config "$VK_BK_CONFIG" \
        --catalog "$VK_BK_CATALOG" backup "$dom" "$@" --json >"$VK_BG_OUT" 2>"$VK_BG_ERR" &
    VK_BG_PID=$!
    vk_on_exit "kill -9 $VK_BG_PID 2>/dev/null || true"
}

# vk_bg_wait SECS: wait for the background backup; sets VK_BG_RC.
vk_bg_wait() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        kill -0 "$VK_BG_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$VK_BG_PID" 2>/dev/null; then
        kill -9 "$VK_BG_PID" 2>/dev/null || true
        wait "$VK_BG_PID" 2>/dev/null || true
        vk_fail "the backup (pid $VK_BG_PID) did not end within $1 s"
    fi
    VK_BG_RC=0
    wait "$VK_BG_PID" || VK_BG_RC=$?
}
