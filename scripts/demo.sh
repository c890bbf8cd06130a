#!/usr/bin/env bash
# The main job: build xswitch and run its demo.
# Works on a fresh Debian 12 machine as root (installs what it needs with apt).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
cargo build --release -p xswitch --bin xswitch
exec ./target/release/xswitch demo "$@"
