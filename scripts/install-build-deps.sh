#!/usr/bin/env bash
# System packages needed to build xswitch. Idempotent; runs apt only when
# something is missing.
set -euo pipefail
# clang/llvm compile the XDP programs (bpf/build.rs); libelf, zlib, m4, make
# build the vendored libbpf/libxdp that xsk-rs links; libpcap-dev is needed by
# libxdp's configure; linux-libc-dev has the kernel UAPI headers (linux/bpf.h);
# iproute2 runs `xswitch demo`'s namespaces and veths.
pkgs=(build-essential pkg-config clang llvm libelf-dev zlib1g-dev m4 make libclang-dev libpcap-dev linux-libc-dev iproute2)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
