#!/bin/sh
# Installs what xswitch's test suite needs from Debian/Ubuntu packages.
#
# Idempotent: every tool is checked first and only missing packages are
# installed; `apt-get update` runs at most once, and only when something is
# missing. Safe to run on every CI job and by hand.
#
#   scripts/install-test-deps.sh          # install what is missing
#   scripts/install-test-deps.sh --check  # exit 1 (listing them) if anything is missing
#
# What needs what:
#   openvswitch-switch  control/tests/ovs_differential.rs runs ovsdb-server and
#                       ovs-vswitchd (userspace, dummy datapath, no kernel module,
#                       no systemd) as the oracle; it pulls in openvswitch-common
#                       (ovs-ofctl, ovs-appctl, ovs-vsctl, ovsdb-tool).
#   iperf3              TCP/UDP transfers through the AF_XDP bridge
#                       (control/tests/afxdp_bridge.rs).
#   ethtool             queue-count changes on veths (link monitor, chaos).
#   iproute2            ip netns / ip link / ss for every privileged test.
#   iputils-ping        ping between test namespaces.
#   procps              sysctl (tests turn IPv6 off in their namespaces).
set -eu

# tool -> package that ships it
REQUIRED="
ovs-vswitchd:openvswitch-switch
ovs-vsctl:openvswitch-switch
ovsdb-server:openvswitch-common
ovsdb-tool:openvswitch-common
ovs-ofctl:openvswitch-common
ovs-appctl:openvswitch-common
iperf3:iperf3
ethtool:ethtool
ip:iproute2
ss:iproute2
ping:iputils-ping
sysctl:procps
"

missing_pkgs=""
missing_tools=""
for entry in $REQUIRED; do
    tool=${entry%%:*}
    pkg=${entry#*:}
    # Debian puts the daemons in /usr/sbin, which a non-login PATH may lack.
    if command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/usr/bin/$tool" ]; then
        continue
    fi
    missing_tools="$missing_tools $tool"
    case " $missing_pkgs " in
        *" $pkg "*) ;;
        *) missing_pkgs="$missing_pkgs $pkg" ;;
    esac
done

if [ -z "$missing_pkgs" ]; then
    echo "install-test-deps: everything is installed"
    exit 0
fi

if [ "${1:-}" = "--check" ]; then
    echo "install-test-deps: missing tools:$missing_tools (packages:$missing_pkgs)" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: missing tools:$missing_tools, and apt-get is not available to install$missing_pkgs" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-test-deps: need root (or sudo) to install$missing_pkgs" >&2
        exit 1
    fi
fi

echo "install-test-deps: installing$missing_pkgs"
# The packages' maintainer scripts ask invoke-rc.d to start the system
# openvswitch service. In a container (no init system, or a policy-rc.d that
# forbids starts) it is simply not started; on a host with systemd it starts,
# and the tests ignore it: they run private daemons in their own directory.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends $missing_pkgs

for entry in $REQUIRED; do
    tool=${entry%%:*}
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/usr/bin/$tool" ]; then
        echo "install-test-deps: $tool is still missing after installing$missing_pkgs" >&2
        exit 1
    fi
done
echo "install-test-deps: done"
