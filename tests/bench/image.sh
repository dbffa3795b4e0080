# shellcheck shell=bash
# virtkeep - the benchmark disk: build tests/bench/gendisk.c, generate the
# image once and cache it under $CACHE/VERSION (VERSION from gendisk
# --version), so that re-runs start at once.  Sourced by run.sh.
#
# A cache entry holds:
#   disk.raw     the content as a sparse raw file (zero-written regions are
#                holes here): the input of the qemu-img convert baseline
#   layout.txt   "KIND OFFSET LENGTH" per region (random, text, zero)
#   disk.qcow2   the benchmark image: data regions plus the zero regions
#                written with explicit zeros (allocated, reading as zeros)
#   alloc.raw    the allocated data alone, concatenated: the zstd baseline
#   summary.txt  gendisk's byte counts; alloc.sha256

bench_build_gendisk() {
    local cc=${CC:-cc}
    [ -f "$abs_top_builddir/common/libcommon.a" ] ||
        vk_fail "'$abs_top_builddir/common/libcommon.a' is not built (run make first)"
    "$cc" -std=gnu11 -O2 -Wall -Wextra -Wshadow -Wvla -Wmissing-prototypes \
        -Wstrict-prototypes -Werror -I"$abs_top_srcdir" -I"$abs_top_builddir" \
        -o "$GENDISK" "$BENCH_SRC/gendisk.c" "$abs_top_builddir/common/libcommon.a" ||
        vk_fail "cannot build '$GENDISK'"
}

# Merge touching "OFFSET LENGTH" lines on stdin.
bench_merge_ranges() {
    awk 'NR > 1 && $1 == s + l { l += $2; next }
         NR > 1 { print s, l }
         { s = $1; l = $2 }
         END { if (NR) print s, l }'
}

# Allocate the zero regions of LAYOUT in the qcow2 QCOW with explicit
# zeros: "write -P 0" (not -z, which would make zero clusters).
bench_write_zero_regions() {
    local qcow=$1 layout=$2 args=() kind off len
    while read -r kind off len; do
        [ "$kind" = zero ] || continue
        args+=(-c "write -P 0 $off $len")
        if [ ${#args[@]} -ge 200 ]; then
            qemu-io -f qcow2 "${args[@]}" "$qcow" >/dev/null
            args=()
        fi
    done <"$layout"
    [ ${#args[@]} = 0 ] || qemu-io -f qcow2 "${args[@]}" "$qcow" >/dev/null
}

# The image's allocation must be exactly the layout's regions, and its
# content exactly the raw file's.
bench_image_check() {
    local dir=$1
    qemu-img map -f qcow2 --output=json "$dir/disk.qcow2" |
        jq -r '.[] | select(.data and (.zero | not)) | "\(.start) \(.length)"' |
        bench_merge_ranges >"$dir/map.alloc"
    awk '{ print $2, $3 }' "$dir/layout.txt" | bench_merge_ranges >"$dir/layout.alloc"
    cmp -s "$dir/map.alloc" "$dir/layout.alloc" ||
        vk_fail "the allocation of '$dir/disk.qcow2' differs from its layout"
    qemu-img compare -q -f raw -F qcow2 "$dir/disk.raw" "$dir/disk.qcow2" ||
        vk_fail "'$dir/disk.qcow2' differs from '$dir/disk.raw'"
    rm -f "$dir/map.alloc" "$dir/layout.alloc"
}

bench_image_generate() {
    local dir=$1 t0
    t0=$(date +%s)
    vk_log "generating the benchmark image in $dir (once; about a minute)"
    "$GENDISK" make "$dir/disk.raw" "$dir/layout.txt" >"$dir/summary.txt"
    qemu-img convert -f raw -O qcow2 -o cluster_size=65536 "$dir/disk.raw" "$dir/disk.qcow2"
    bench_write_zero_regions "$dir/disk.qcow2" "$dir/layout.txt"
    bench_image_check "$dir"
    "$GENDISK" extract "$dir/disk.raw" "$dir/layout.txt" "$dir/alloc.raw"
    sha256sum "$dir/alloc.raw" | cut -d' ' -f1 >"$dir/alloc.sha256"
    vk_log "generated in $(($(date +%s) - t0)) s"
}

bench_image_prepare() {
    IMG_VERSION=$("$GENDISK" --version)
    IMG=$CACHE/$IMG_VERSION
    mkdir -p "$CACHE"
    chmod 0755 "$CACHE"
    (
        flock 9
        if [ ! -f "$IMG/complete" ]; then
            local tmp=$CACHE/.tmp-$IMG_VERSION
            rm -rf "$tmp" "$IMG"
            mkdir -p "$tmp"
            bench_image_generate "$tmp"
            touch "$tmp/complete"
            mv "$tmp" "$IMG"
        fi
    ) 9>"$CACHE/.lock"
    [ -f "$IMG/complete" ] || vk_fail "cannot prepare the benchmark image in '$IMG'"
    local k v
    while IFS='=' read -r k v; do
        bench_set "image.$k" "$v"
    done < <(tr ' ' '\n' <"$IMG/summary.txt")
    bench_set image.path "$IMG/disk.qcow2"
    bench_set image.virtual_size "$(qemu-img info --output=json "$IMG/disk.qcow2" |
        jq '."virtual-size"')"
    bench_set image.alloc_sha256 "$(cat "$IMG/alloc.sha256")"
}
