// SPDX-License-Identifier: Apache-2.0
/*
 * tcp_connect: every outgoing TCP connect (IPv4 and IPv6), aggregated in the kernel.
 *
 * Hook
 *   raw tracepoint inet_sock_set_state(const struct sock *sk, int oldstate, int newstate), only
 *   oldstate TCP_CLOSE(7) -> newstate TCP_SYN_SENT(2) on a socket with sk_protocol IPPROTO_TCP. It
 *   fires inside connect(), in the caller's context, so pid, comm and cgroup are the caller's. Refused
 *   connects pass through SYN_SENT too and are counted. The source port is still 0 at this point, so
 *   it is not part of the record. No kprobes/fentry: this must work on kernels without them.
 *   Why a raw tracepoint and not the sock:inet_sock_set_state perf-event tracepoint: the hook fires
 *   for every state change of every TCP socket on the node (5-6 per connection), and the perf-event
 *   flavour marshals all its arguments (addresses, ports, family) into a trace record for each of
 *   them before the program can look at the states. Here the states are plain arguments, the other
 *   transitions return after two compares, and the socket is read (two bpf_probe_read_kernel calls)
 *   only for the one transition that is recorded.
 *   Socket fields are read at offsets taken from the running kernel's BTF (never from headers).

 * Maps
 *   conns0, conns1  hash (not LRU), key struct conn_key -> value struct conn_val, NM_MAP_SIZE entries
 *                   each. Double buffer: the program writes only the one selected by `active`;
 *                   user space flips `active`, waits until every CPU has left the program
 *                   (stats.enter/exit), then reads and deletes the other one at leisure.
 *                   Written by: this program (insert, atomic count, last_seen/pid/comm).
 *                   Deleted by: user space drain (inactive buffer only). Read by: user space drain.
 *   active          array[1] of u32, which of conns0/conns1 is written. Written by user space, read
 *                   here.
 *   stats           per-cpu array[1] of struct conn_stats. Written by this program, read (never
 *                   reset) by user space, which works with differences of these running counters:
 *                     enter/exit       programs started/finished on this CPU: user space waits for
 *                                      exit >= enter-at-flip so no program still holds the old buffer.
 *                     new_keys[b]      keys inserted into buffer b: user space checks it drained
 *                                      exactly that many (a mismatch would be an unseen loss).
 *                     insert_failed[b] new keys that could not be inserted (buffer full or update
 *                                      error): each is one connect lost, reported as loss.
 *
 *   Why a plain hash and not an LRU hash: an LRU hash evicts silently (even before it is full,
 *   because of its per-CPU free lists), and an evicted entry's counts are gone. A full plain hash
 *   rejects the insert instead, which we count exactly; existing keys keep counting. Why a double
 *   buffer: a drain that deletes from the map the program is writing races with a program that
 *   already holds a pointer to the value (its increment lands in freed, possibly reused, memory).
 *   After the flip and the wait, the drained buffer has no writer left, so nothing is lost.
 *
 * Record layout (keep aligned with sniffer/connect_probe.py: ConnKey, ConnVal, ConnStats; a unit
 * test compares them with the layouts bcc reports after compiling this file)
 *   conn_key (56 bytes, no implicit padding; zeroed before use so padding never splits keys)
 *     0 u64 cgroup_id      bpf_get_current_cgroup_id(): cgroup v2 id = inode of its cgroupfs dir
 *     8 u32 netns          inode of the socket's network namespace (sk->__sk_common.skc_net->ns.inum)
 *    12 u8  family         AF_INET(2) / AF_INET6(10)
 *    13 u8  _pad0[3]
 *    16 u8  saddr[16]      IPv4 in the first 4 bytes, network order
 *    32 u8  daddr[16]
 *    48 u16 dport          host order
 *    50 u8  _pad1[6]
 *   conn_val (48 bytes)
 *     0 u64 count          connects since the buffer was last drained
 *     8 u64 first_seen_ns  bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the first connect
 *    16 u64 last_seen_ns
 *    24 u32 pid            tgid of the last connecting task (as seen from the initial pid namespace)
 *    28 char comm[16]
 *    44 u8  _pad[4]
 *
 * Parameters (-D defines, set by sniffer/connect_probe.py; offsets from sniffer/btf.py)
 *   NM_MAP_SIZE          entries per buffer
 *   NM_SKC_SPAN          bytes of struct sock_common read in one go (covers every NM_OFF_SKC_*)
 *   NM_OFF_SKC_DADDR, NM_OFF_SKC_RCV_SADDR, NM_OFF_SKC_DPORT, NM_OFF_SKC_FAMILY,
 *   NM_OFF_SKC_V6_DADDR, NM_OFF_SKC_V6_RCV_SADDR, NM_OFF_SKC_NET
 *                        offsets inside struct sock_common (= struct sock's __sk_common, at 0)
 *   NM_OFF_SK_PROTOCOL   offset of sk_protocol (u16) in struct sock; -1 where it is a bitfield
 *                        (kernels < 5.6): the protocol is then not checked
 *   NM_OFF_NET_NS_INUM   offset of ns.inum in struct net
 *   NM_FILTER_NETNS      if non-zero, only sockets in this network namespace are recorded (tests)
 */
#include <uapi/linux/bpf.h>
#include <linux/socket.h>
#include <linux/in.h>

#ifndef NM_MAP_SIZE
#define NM_MAP_SIZE 65536
#endif
#ifndef NM_FILTER_NETNS
#define NM_FILTER_NETNS 0
#endif
#if !defined(NM_SKC_SPAN) || !defined(NM_OFF_SKC_NET) || !defined(NM_OFF_NET_NS_INUM) || !defined(NM_OFF_SK_PROTOCOL)
#error "struct offsets must come from the running kernel's BTF (sniffer/btf.py)"
#endif
_Static_assert(NM_SKC_SPAN % 8 == 0 && NM_SKC_SPAN <= 256, "NM_SKC_SPAN: multiple of 8, at most 256");

#define NM_TCP_SYN_SENT 2
#define NM_TCP_CLOSE 7

struct conn_key {
    u64 cgroup_id;
    u32 netns;
    u8 family;
    u8 _pad0[3];
    u8 saddr[16];
    u8 daddr[16];
    u16 dport;
    u8 _pad1[6];
};

struct conn_val {
    u64 count;
    u64 first_seen_ns;
    u64 last_seen_ns;
    u32 pid;
    char comm[16];
    u8 _pad[4];
};

struct conn_stats {
    u64 enter;
    u64 exit;
    u64 new_keys[2];
    u64 insert_failed[2];
};

BPF_TABLE("hash", struct conn_key, struct conn_val, conns0, NM_MAP_SIZE);
BPF_TABLE("hash", struct conn_key, struct conn_val, conns1, NM_MAP_SIZE);
BPF_ARRAY(active, u32, 1);
BPF_PERCPU_ARRAY(stats, struct conn_stats, 1);

static __always_inline void touch(struct conn_val *v, u64 now, u32 pid)
{
    __sync_fetch_and_add(&v->count, 1);
    // last_seen/pid/comm: last writer wins; a torn comm between two racing tasks is acceptable.
    v->last_seen_ns = now;
    v->pid = pid;
    bpf_get_current_comm(&v->comm, sizeof(v->comm));
}

#define SKC(type, off) (*(type *)((char *)skc + (off)))

int nm_inet_sock_set_state(struct bpf_raw_tracepoint_args *ctx)
{
    // args: (const struct sock *sk, const int oldstate, const int newstate). Compare the states
    // first: every other transition of every TCP socket leaves here without touching memory.
    if ((int)ctx->args[1] != NM_TCP_CLOSE || (int)ctx->args[2] != NM_TCP_SYN_SENT)
        return 0;
    void *sk = (void *)ctx->args[0];
#if NM_OFF_SK_PROTOCOL >= 0
    u16 protocol = 0;
    bpf_probe_read_kernel(&protocol, sizeof(protocol), sk + NM_OFF_SK_PROTOCOL);
    if (protocol != IPPROTO_TCP)  // MPTCP's parent socket passes here too; its TCP subflow counts
        return 0;
#endif

    u32 zero = 0;
    struct conn_stats *st = stats.lookup(&zero);
    u32 *activep = active.lookup(&zero);
    if (!st || !activep)
        return 0;
    // Atomic add = full barrier on x86 (lock xadd): `enter` is visible before `active` is read, so
    // user space that flipped `active` and then saw this enter count knows to wait for our exit.
    __sync_fetch_and_add(&st->enter, 1);
    u32 buf = *activep & 1;

    u64 skc[NM_SKC_SPAN / 8];  // the head of struct sock_common, read once
    if (bpf_probe_read_kernel(skc, sizeof(skc), sk) < 0)
        goto out;
    struct conn_key key = {};
    void *net = SKC(void *, NM_OFF_SKC_NET);
    if (net)
        bpf_probe_read_kernel(&key.netns, sizeof(key.netns), net + NM_OFF_NET_NS_INUM);
    if (NM_FILTER_NETNS && key.netns != NM_FILTER_NETNS)
        goto out;

    u16 family = SKC(u16, NM_OFF_SKC_FAMILY);
    key.cgroup_id = bpf_get_current_cgroup_id();
    key.family = family;
    key.dport = bpf_ntohs(SKC(u16, NM_OFF_SKC_DPORT));
    if (family == AF_INET) {
        __builtin_memcpy(key.saddr, (char *)skc + NM_OFF_SKC_RCV_SADDR, 4);
        __builtin_memcpy(key.daddr, (char *)skc + NM_OFF_SKC_DADDR, 4);
    } else if (family == AF_INET6) {
        // An AF_INET6 socket connecting to an IPv4 address carries ::ffff:a.b.c.d here; user space
        // maps it to the IPv4 address.
        __builtin_memcpy(key.saddr, (char *)skc + NM_OFF_SKC_V6_RCV_SADDR, 16);
        __builtin_memcpy(key.daddr, (char *)skc + NM_OFF_SKC_V6_DADDR, 16);
    } else {
        goto out;
    }

    u64 now = bpf_ktime_get_ns();
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    struct conn_val *v = buf ? conns1.lookup(&key) : conns0.lookup(&key);
    if (v) {
        touch(v, now, pid);
        goto out;
    }
    struct conn_val init = {};
    init.count = 1;
    init.first_seen_ns = now;
    init.last_seen_ns = now;
    init.pid = pid;
    bpf_get_current_comm(&init.comm, sizeof(init.comm));
    int err = buf ? conns1.insert(&key, &init) : conns0.insert(&key, &init);
    if (err == 0) {
        st->new_keys[buf]++;
    } else {
        // -EEXIST: another CPU inserted the same key since our lookup; count into its entry.
        v = buf ? conns1.lookup(&key) : conns0.lookup(&key);
        if (v)
            touch(v, now, pid);
        else
            st->insert_failed[buf]++;
    }
out:
    // Plain increment is enough: a CPU runs one instance of this program at a time.
    st->exit++;
    return 0;
}
