// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xswitch benchmark sink: counts every frame that reaches the interface it
 * is attached to (packets and bytes, per CPU) and drops it. This is the
 * cheapest possible receiver, so a throughput run whose sink is this program
 * measures the path in front of it, not the kernel stack behind it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sink_count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_count);
} sink_stats SEC(".maps");

SEC("xdp")
int xswitch_sink(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct sink_count *c = bpf_map_lookup_elem(&sink_stats, &key);

	if (c) {
		c->packets++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
