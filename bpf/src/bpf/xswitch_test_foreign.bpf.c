// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test fixture, not part of the switch: an XDP program with another name
 * than xswitch_port. bpf/tests/port_program.rs attaches it to stand for
 * "somebody else's program", which the loader must refuse to replace.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xsw_foreign(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
