#!/bin/bash
# Build every libFuzzer target and run each for a short, bounded time from its
# seed corpus (tests/fuzz/corpus/NAME/, if any).  A crash, leak or sanitizer
# report fails the test.  Long runs: see README.md.
set -euo pipefail
. "$abs_top_srcdir/tests/lib/harness.sh"

# The same directory as `make fuzz`; crash artifacts land there too.
out="$abs_builddir/fuzz/bin"
rc=0
bash "$abs_top_srcdir/tests/fuzz/fuzz-build.sh" "$abs_top_srcdir" "$abs_top_builddir" "$out" || rc=$?
if [ "$rc" = 77 ]; then
    vk_skip "clang with libFuzzer is not installed (apt-get install clang)"
elif [ "$rc" != 0 ]; then
    exit "$rc"
fi

seconds=${VIRTKEEP_FUZZ_SECONDS:-8}
for fuzzer in "$out"/fuzz-*; do
    [ -x "$fuzzer" ] || continue
    name=$(basename "$fuzzer")
    corpus="$VK_SCRATCH/corpus-$name"
    mkdir -p "$corpus"
    if [ -d "$abs_top_srcdir/tests/fuzz/corpus/$name" ]; then
        cp -r "$abs_top_srcdir/tests/fuzz/corpus/$name/." "$corpus/"
    fi
    echo "== $name: ${seconds}s"
    "$fuzzer" -max_total_time="$seconds" -max_len=65536 -print_final_stats=0 \
        -artifact_prefix="$out/$name-" "$corpus" 2>&1 | tail -3
done
echo "all fuzzers ran clean"
