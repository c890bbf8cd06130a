#!/usr/bin/env bash
# The whole test suite. Works on a fresh Debian 12 machine as root
# (installs what it needs with apt). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
./scripts/install-test-deps.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== unit, property, integration and differential tests"
cargo test --workspace --release

echo "== PMD stress: 4 PMD threads, 10,000 port operations, concurrent flow changes"
cargo test -p xswitch-dataplane --release --test pmd_stress
echo "== the same with legacy-semantics: passes only because the watchdog reports the stuck PMD"
cargo test -p xswitch-dataplane --release --features legacy-semantics --test pmd_stress

echo "== loom model of the port-deletion protocol"
RUSTFLAGS="--cfg loom" cargo test -p xswitch-dataplane --release --test loom_reclaim \
    --target-dir target/loom

echo "== benchmarks compile and run once (figures come from 'cargo bench')"
cargo test -p xswitch-benches --release --benches

if [[ "${XSWITCH_FUZZ_SECONDS:-30}" != 0 ]]; then
    echo "== bounded fuzzing of frame parsing"
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    ./fuzz/run.sh "${XSWITCH_FUZZ_SECONDS:-30}"
fi
