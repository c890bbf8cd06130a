#!/bin/sh
# Runs the `extract` fuzz target for a bounded time (seconds, default 60).
#
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them. Install cargo-fuzz
# with `cargo install cargo-fuzz` if it is missing. The corpus grows in
# fuzz/corpus/extract (git-ignored); crashes land in fuzz/artifacts/extract.
set -eu
cd "$(dirname "$0")"
secs="${1:-60}"
[ $# -gt 0 ] && shift
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi
mkdir -p corpus/extract
RUSTC_BOOTSTRAP=1 exec cargo fuzz run extract corpus/extract -- \
    -max_total_time="$secs" -max_len=2048 -print_final_stats=1 "$@"
