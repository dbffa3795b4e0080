#!/bin/bash
# Recover a disk image from a virtkeep archive with standard tools only, as
# docs/FORMAT.md ("Restore by hand") tells a user to: tar -x, zstd -d,
# sha256sum, dd.  test-archive write-sample writes the archive and the raw
# image it holds; nothing of virtkeep reads the archive here.
set -euo pipefail
. "$abs_top_srcdir/tests/lib/harness.sh"

vk_require_cmd tar zstd jq sha256sum dd cmp truncate

d=$VK_SCRATCH
"$abs_top_builddir/tests/unit/test-archive" write-sample "$d/vda.tar" "$d/reference.img"

# The trailer sits 1536 bytes before the end (FORMAT.md, "Finding the index").
[ "$(tail -c 1536 "$d/vda.tar" | head -c 8)" = VKARCHTR ] || vk_fail "no trailer where documented"

# 1. Unpack with plain tar.
mkdir "$d/x"
tar -xf "$d/vda.tar" -C "$d/x"
[ "$(jq -r .format "$d/x/header.json")" = virtkeep-archive ] || vk_fail "bad header.json"
vsize=$(jq -r .virtual_size "$d/x/header.json")

# 2. Decompress every chunk and check it against the index.
n=0
for f in "$d"/x/data/*.zst; do
    zstd -q -d "$f" -o "${f%.zst}.raw"
    base=$(basename "$f" .zst)
    off=$((16#${base%-*})) len=$((16#${base#*-}))
    [ "$(stat -c %s "${f%.zst}.raw")" = "$len" ] || vk_fail "$base: wrong length"
    want=$(jq -r --argjson o "$off" '.extents[] | select(.offset == $o) | .sha256' \
        "$d/x/index.json")
    got=$(sha256sum "${f%.zst}.raw" | cut -d' ' -f1)
    [ "$want" = "$got" ] || vk_fail "$base: sha256 $got, the index says $want"
    n=$((n + 1))
done
[ "$n" = "$(jq '[.extents[] | select(.kind == "data")] | length' "$d/x/index.json")" ] ||
    vk_fail "the tar holds $n chunks, the index lists a different number"

# 3. Reassemble the image: chunks at their offsets; zero extents and gaps are
#    holes of the sparse file.
truncate -s "$vsize" "$d/restored.img"
for f in "$d"/x/data/*.raw; do
    base=$(basename "$f" .raw)
    dd if="$f" of="$d/restored.img" bs=1M seek=$((16#${base%-*})) oflag=seek_bytes \
        conv=notrunc,sparse status=none
done
cmp "$d/reference.img" "$d/restored.img" || vk_fail "the restored image differs"
echo "recovered $n chunks, $vsize bytes, byte for byte with tar + zstd + dd"
