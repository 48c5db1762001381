// SPDX-License-Identifier: GPL-2.0
//
// dns_reply: capture DNS replies received by any socket on the node.
//
// Hook: cgroup_skb/ingress, attached to the cgroup v2 root (/sys/fs/cgroup/unified on hybrid hosts,
//   /sys/fs/cgroup on pure v2 hosts) as a BPF link (BPF_LINK_CREATE, BPF_CGROUP_INET_INGRESS), so it
//   goes away with the loading process. Every socket in every cgroup below the root inherits it, so it
//   sees the replies of every network namespace. It runs from sk_filter() once the packet has been
//   matched to its receiving socket: packets nobody listens for (closed ports) are never seen.
//   Packet data starts at the IP header. The filter reads headers with direct packet access (needs
//   CAP_BPF) and falls back to bpf_skb_load_bytes() when they are not in the linear part; the copy of
//   a captured reply always uses bpf_skb_load_bytes().
//   The program never drops anything: it always returns 1 (allow).
//
// Covered:
//   - IPv4 (any IHL; non-first fragments skipped, a first fragment is captured and marked truncated)
//     and IPv6 with the fixed 40-byte header only: if nexthdr is not directly UDP/TCP (extension
//     headers: hop-by-hop, routing, fragment, ...) the packet is ignored. DNS replies with IPv6
//     extension headers are rare; walking them is not worth the verifier complexity here.
//   - UDP with source port 53: the UDP payload (the DNS message).
//   - TCP with source port 53 and a non-empty payload: the segment's payload, i.e. for the first
//     segment of a reply the 2-byte length prefix followed by the start of the message. Each segment
//     is captured on its own; no reassembly. User space (sniffer/dns_parse.py) uses a segment only if
//     it starts with a length prefix and holds the whole message within the captured bytes; replies
//     split over segments, continuation segments and later messages of a pipelined stream beyond the
//     captured bytes are not decoded.
//   - At most DNS_MAX_PAYLOAD (512) bytes of payload are copied; payload_len says how long it really
//     was and flags bit 0 (truncated) says that fewer bytes were captured.
//
// Cgroup id: bpf_skb_cgroup_id(skb) = cgroup v2 id (the directory's inode number) of the socket the
//   packet is delivered to. bpf_get_current_cgroup_id() would be wrong here: ingress runs in softirq
//   context (or in whatever task happens to process the backlog), not in the receiving task.
//
// Maps:
//   dns_events  BPF_RINGBUF_OUTPUT. Written by this program (one struct dns_event per captured packet),
//               read by sniffer/dns_probe.py.
//   dns_lost    BPF_PERCPU_ARRAY[1] u64. Incremented by this program when the ring buffer is full (the
//               packet is still allowed, only the record is lost); read (summed over CPUs) by
//               sniffer/dns_probe.py and reported as loss.
//
// Record layout (struct dns_event, 576 bytes, little-endian host order unless noted).
// Keep aligned with sniffer/dns_probe.py (EVENT_FORMAT); tests/bpf/test_dns_probe.py checks the size
// and offsets against this file.
//   off  size field
//     0     8 cgroup_id     cgroup v2 id of the receiving socket (bpf_skb_cgroup_id)
//     8     8 ts_raw        bpf_ktime_get_ns() (CLOCK_MONOTONIC) at capture
//    16    16 saddr         source address (network order); IPv4 in the first 4 bytes, rest zero
//    32    16 daddr         destination address (network order), same convention
//    48     2 sport         source port (host order; 53)
//    50     2 dport         destination port (host order)
//    52     2 payload_len   transport payload length in the packet (may exceed captured_len)
//    54     2 captured_len  bytes copied into payload (<= DNS_MAX_PAYLOAD)
//    56     1 family        AF_INET (2) or AF_INET6 (10)
//    57     1 protocol      IPPROTO_UDP (17) or IPPROTO_TCP (6)
//    58     1 flags         bit 0: truncated (captured_len < payload_len, or a first IPv4 fragment)
//    59     5 _pad
//    64   512 payload       transport payload (UDP: DNS message; TCP: 2-byte length + message)
//
// Parameters (defines, set by the loader): DNS_RINGBUF_PAGES (ring buffer size in pages, power of 2).

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>

#define DNS_MAX_PAYLOAD 512
#define DNS_PORT 53
#define DNS_FLAG_TRUNCATED 1
_Static_assert((DNS_MAX_PAYLOAD & (DNS_MAX_PAYLOAD - 1)) == 0, "DNS_MAX_PAYLOAD must be a power of 2");

#ifndef DNS_RINGBUF_PAGES
#define DNS_RINGBUF_PAGES 1024
#endif

struct dns_event {
    u64 cgroup_id;
    u64 ts_raw;
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;
    u16 dport;
    u16 payload_len;
    u16 captured_len;
    u8 family;
    u8 protocol;
    u8 flags;
    u8 _pad[5];
    u8 payload[DNS_MAX_PAYLOAD];
};

BPF_RINGBUF_OUTPUT(dns_events, DNS_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(dns_lost, u64, 1);

static __always_inline void count_lost(void)
{
    int zero = 0;
    u64 *lost = dns_lost.lookup(&zero);
    if (lost)
        *lost += 1;
}

int dns_reply_ingress(struct __sk_buff *skb)
{
    u8 family, proto, truncated = 0;
    u32 l4_off, pkt_len = skb->len;
    u32 payload_off, payload_len;
    u16 ports[2];
    // This runs for every packet every socket on the node receives, so the common case (not a reply
    // from port 53) must leave after a few plain loads: the headers are read straight from the
    // packet (direct packet access, no helper calls) when they are in its linear part, which they
    // nearly always are; bpf_skb_load_bytes is only the fallback.
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;

    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        u8 vihl;
        u16 frag;
        if (data + 20 <= data_end) {
            vihl = *(u8 *)data;
            proto = *(u8 *)(data + 9);
            frag = *(u16 *)(data + 6);
        } else if (bpf_skb_load_bytes(skb, 0, &vihl, 1) < 0 || bpf_skb_load_bytes(skb, 9, &proto, 1) < 0 ||
                   bpf_skb_load_bytes(skb, 6, &frag, 2) < 0) {
            return 1;
        }
        if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
            return 1;
        frag = bpf_ntohs(frag);
        if (frag & 0x1fff)  // non-first fragment: no L4 header here
            return 1;
        if (frag & 0x2000)  // first fragment: the rest of the message is elsewhere
            truncated = 1;
        l4_off = (vihl & 0x0f) * 4;
        if (l4_off < 20)
            return 1;
        family = AF_INET;
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        // Fixed header only; extension headers are not walked (see header comment).
        if (data + 40 <= data_end)
            proto = *(u8 *)(data + 6);
        else if (bpf_skb_load_bytes(skb, 6, &proto, 1) < 0)
            return 1;
        if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
            return 1;
        l4_off = 40;
        family = AF_INET6;
    } else {
        return 1;
    }

    if (data + l4_off + sizeof(ports) <= data_end)
        __builtin_memcpy(ports, data + l4_off, sizeof(ports));
    else if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) < 0)
        return 1;
    if (ports[0] != bpf_htons(DNS_PORT))
        return 1;

    if (proto == IPPROTO_UDP) {
        u16 ulen;
        if (bpf_skb_load_bytes(skb, l4_off + 4, &ulen, 2) < 0)
            return 1;
        ulen = bpf_ntohs(ulen);
        if (ulen < 8)
            return 1;
        payload_off = l4_off + 8;
        payload_len = ulen - 8;
    } else {
        u8 doff;
        if (bpf_skb_load_bytes(skb, l4_off + 12, &doff, 1) < 0)
            return 1;
        payload_off = l4_off + (doff >> 4) * 4;
        if (payload_off >= pkt_len)  // pure ACK / SYN / FIN without data
            return 1;
        payload_len = pkt_len - payload_off;
    }
    if (payload_len == 0)
        return 1;

    struct dns_event *ev = dns_events.ringbuf_reserve(sizeof(struct dns_event));
    if (!ev) {
        count_lost();
        return 1;
    }

    ev->cgroup_id = bpf_skb_cgroup_id(skb);
    ev->ts_raw = bpf_ktime_get_ns();
    __builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
    __builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
    if (family == AF_INET) {
        bpf_skb_load_bytes(skb, 12, ev->saddr, 4);
        bpf_skb_load_bytes(skb, 16, ev->daddr, 4);
    } else {
        bpf_skb_load_bytes(skb, 8, ev->saddr, 16);
        bpf_skb_load_bytes(skb, 24, ev->daddr, 16);
    }
    ev->sport = bpf_ntohs(ports[0]);
    ev->dport = bpf_ntohs(ports[1]);
    ev->family = family;
    ev->protocol = proto;
    __builtin_memset(ev->_pad, 0, sizeof(ev->_pad));

    // Bytes actually present in this skb may be fewer than the header claims (fragments, bogus
    // lengths): never copy past the end of the packet.
    u32 avail = payload_off < pkt_len ? pkt_len - payload_off : 0;
    u32 cap = payload_len < avail ? payload_len : avail;
    if (cap > DNS_MAX_PAYLOAD)
        cap = DNS_MAX_PAYLOAD;
    if (cap < payload_len)
        truncated = 1;
    // The verifier needs a provable upper bound on the length. The empty asm hides cap's known range
    // from clang, and the mask (identity for cap in [1, DNS_MAX_PAYLOAD], a power of two) gives the
    // verifier the bound [1, DNS_MAX_PAYLOAD] on the very register passed to the helper.
    asm volatile("" : "+r"(cap));
    if (cap >= 1) {
        u32 n = ((cap - 1) & (DNS_MAX_PAYLOAD - 1)) + 1;
        if (bpf_skb_load_bytes(skb, payload_off, ev->payload, n) < 0)
            cap = 0;
    }
    ev->payload_len = payload_len > 0xffff ? 0xffff : payload_len;
    ev->captured_len = cap;
    ev->flags = truncated ? DNS_FLAG_TRUNCATED : 0;
    dns_events.ringbuf_submit(ev, 0);
    return 1;
}
