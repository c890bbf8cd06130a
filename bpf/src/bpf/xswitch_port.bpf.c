// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xswitch port program: steers every frame that arrives on a port's rx queue
 * to the AF_XDP socket bound to that queue.
 *
 * xsks_map is indexed by rx_queue_index; the control plane inserts one socket
 * per queue. A queue with no socket (not yet bound, or being torn down)
 * passes its frames to the kernel stack: the redirect's fallback action is
 * XDP_PASS, so nothing is dropped silently while a port comes or goes.
 *
 * queue_stats counts, per queue and per CPU, the frames redirected and the
 * frames passed; userspace sums the CPUs.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define XSWITCH_MAX_QUEUES 256

struct queue_stats {
	__u64 redirected;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XSWITCH_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XSWITCH_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct queue_stats);
} queue_stats SEC(".maps");

SEC("xdp")
int xswitch_port(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	struct queue_stats *st = bpf_map_lookup_elem(&queue_stats, &q);
	long act = bpf_redirect_map(&xsks_map, q, XDP_PASS);

	if (st) {
		if (act == XDP_REDIRECT)
			st->redirected++;
		else
			st->passed++;
	}
	return act;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
