// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xswitch benchmark reference device: a two-port "switch" made of nothing
 * but the kernel's XDP_REDIRECT through a devmap. Attached to both ports;
 * peer_of maps the ingress ifindex to the egress ifindex, so a frame is
 * forwarded with no parsing at all. This is the fastest any forwarding
 * between two veths can be on this kernel: the limit the other devices
 * under test are compared with.
 *
 * A frame from an interface with no peer entry passes to the stack.
 * fwd_stats counts, per CPU, frames redirected and frames passed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct fwd_count {
	__u64 redirected;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} peer_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fwd_count);
} fwd_stats SEC(".maps");

SEC("xdp")
int xswitch_redirect(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct fwd_count *c = bpf_map_lookup_elem(&fwd_stats, &key);
	long act = bpf_redirect_map(&peer_of, ctx->ingress_ifindex, XDP_PASS);

	if (c) {
		if (act == XDP_REDIRECT)
			c->redirected++;
		else
			c->passed++;
	}
	return act;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
