#!/usr/bin/env bash
# The whole test suite. Works on a fresh Debian 12 machine as root
# (installs what it needs with apt). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
./scripts/install-test-deps.sh

# Every cargo test run is also logged, to print one total at the end.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
run_tests() { cargo test "$@" 2>&1 | tee -a "$results"; }

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== unit, property, integration and differential tests"
run_tests --workspace --release

echo "== PMD stress: 4 PMD threads, 10,000 port operations, concurrent flow changes"
run_tests -p xswitch-dataplane --release --test pmd_stress
echo "== the same with legacy-semantics: passes only because the watchdog reports the stuck PMD"
run_tests -p xswitch-dataplane --release --features legacy-semantics --test pmd_stress
echo "== chaos harness against the legacy-semantics build: must report FAIL"
run_tests -p xswitch --release --features legacy-semantics --target-dir target/legacy --test chaos

echo "== loom model of the port-deletion protocol"
RUSTFLAGS="--cfg loom" run_tests -p xswitch-dataplane --release --test loom_reclaim \
    --target-dir target/loom

echo "== benchmarks compile and run once (figures come from 'cargo bench')"
run_tests -p xswitch-benches --release --benches

if [[ "${XSWITCH_FUZZ_SECONDS:-30}" != 0 ]]; then
    echo "== bounded fuzzing of frame parsing"
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    ./fuzz/run.sh "${XSWITCH_FUZZ_SECONDS:-30}"
fi

echo "== total"
awk '/^test result:/ { p += $4; f += $6 } END { printf "test.sh: %d passed, %d failed\n", p, f }' "$results"
