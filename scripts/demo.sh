#!/usr/bin/env bash
# The main job: build xswitch and run its demo — three hosts in network
# namespaces bridged by `xswitch run` on AF_XDP: ping, a TCP transfer with
# iperf3, the switch's statistics, everything removed afterwards (also on
# Ctrl-C). `./scripts/demo.sh --memory` shows the packet walk on in-memory
# ports instead (no root needed).
# Works on a fresh Debian 12 machine as root (installs what it needs with apt).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
# What the demo runs inside the namespaces.
missing=()
for pair in ip:iproute2 ss:iproute2 ping:iputils-ping iperf3:iperf3 ethtool:ethtool sysctl:procps; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # iperf3 asks whether to start a daemon; the demo starts its own.
    echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get install -y -q --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi
cargo build --release -p xswitch --bin xswitch
exec ./target/release/xswitch demo "$@"
