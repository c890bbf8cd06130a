// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xswitch traffic generator program, run by BPF_PROG_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel builds real xdp_frames from the
 * template userspace passes in, runs this program on each, and performs the
 * redirect it asks for, in batches of 64, `repeat` times per syscall.
 *
 * Each run redirects the frame out of `out_ifindex` (an interface of the
 * network namespace the calling thread is in). With n_flows > 1 it first
 * rewrites the UDP source port to port_base + (a per-CPU counter modulo
 * n_flows), so consecutive frames belong to n_flows different 5-tuples.
 *
 * The kernel keeps a frame's bytes between runs (it only resets the buffer
 * pointers), so the port found in the frame is whatever an earlier run left
 * there: the UDP checksum is fixed incrementally from that old value to the
 * new one (RFC 1624), which stays right however the pages are recycled.
 * A zero UDP checksum (IPv4 "no checksum") is left alone.
 *
 * The program is also attached to the generator interface itself. Each
 * BPF_PROG_RUN call adds a program that is not attached anywhere to the
 * XDP dispatcher and removes it afterwards; both are trampoline updates
 * that wait for an RCU grace period (measured: 25-35 ms per call, whatever
 * the batch). Attached, the program stays in the dispatcher and a call
 * costs only its frames. The generator's own frames carry GEN_MAGIC in
 * 4 bytes of XDP metadata; any other frame (real traffic arriving on the
 * interface: replies, ICMP errors) has none and is passed to the stack
 * untouched — attached this way the program is a no-op that gives the veth
 * NAPI, which it needs to receive redirected frames anyway.
 *
 * gen_state counts the generator's runs per CPU; userspace sums it to
 * cross-check the number of frames it asked for.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Set by the loader before load; frozen (read-only) afterwards. */
const volatile __u32 out_ifindex = 0;
const volatile __u32 n_flows = 1;
const volatile __u32 port_base = 1024;
const volatile __u32 is_ipv6 = 0;

/* "xswg": metadata in front of every generated frame. */
#define GEN_MAGIC 0x78737767

struct gen_cpu {
	__u64 runs;
	__u32 next_flow;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cpu);
} gen_state SEC(".maps");

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), on raw 16-bit words. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32) new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xswitch_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *meta = (void *)(long)ctx->data_meta;
	__u32 key = 0;
	struct gen_cpu *st;

	if ((void *)(meta + 1) > data || *meta != GEN_MAGIC)
		return XDP_PASS;
	st = bpf_map_lookup_elem(&gen_state, &key);
	if (!st)
		return XDP_ABORTED;
	st->runs++;
	if (n_flows > 1) {
		struct udphdr *udp;
		__u16 old, new;

		if (is_ipv6)
			udp = data + sizeof(struct ethhdr) + sizeof(struct ipv6hdr);
		else
			udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
		if ((void *)(udp + 1) > data_end)
			return XDP_ABORTED;
		old = udp->source;
		new = bpf_htons((__u16)(port_base + st->next_flow));
		if (++st->next_flow >= n_flows)
			st->next_flow = 0;
		if (old != new) {
			udp->source = new;
			if (udp->check) {
				__u16 c = csum_replace16(udp->check, old, new);

				udp->check = c ? c : 0xffff;
			}
		}
	}
	return bpf_redirect(out_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
