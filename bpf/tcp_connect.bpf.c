// SPDX-License-Identifier: Apache-2.0
/*
 * tcp_connect: every outgoing TCP connect (IPv4 and IPv6), aggregated in the kernel.
 *
 * Hook
 *   tracepoint sock:inet_sock_set_state, only oldstate TCP_CLOSE(7) -> newstate TCP_SYN_SENT(2)
 *   with protocol IPPROTO_TCP. It fires inside connect(), in the caller's context, so pid, comm
 *   and cgroup are the caller's. Refused connects pass through SYN_SENT too and are counted.
 *   The source port is still 0 at this point, so it is not part of the record.
 *   No kprobes/fentry: this must work on kernels without them.
 *
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
 *    48 u16 dport          host order (as in the tracepoint)
 *    50 u8  _pad1[6]
 *   conn_val (48 bytes)
 *     0 u64 count          connects since the buffer was last drained
 *     8 u64 first_seen_ns  bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the first connect
 *    16 u64 last_seen_ns
 *    24 u32 pid            tgid of the last connecting task (as seen from the initial pid namespace)
 *    28 char comm[16]
 *    44 u8  _pad[4]
 *
 * Parameters (-D defines, set by sniffer/connect_probe.py)
 *   NM_MAP_SIZE          entries per buffer
 *   NM_OFF_SOCK_NET      offset of __sk_common.skc_net.net in struct sock     } from the running
 *   NM_OFF_NET_NS_INUM   offset of ns.inum in struct net                       } kernel's BTF, never
 *                                                                              } from headers
 *   NM_FILTER_NETNS      if non-zero, only sockets in this network namespace are recorded (tests)
 */
#include <uapi/linux/ptrace.h>
#include <linux/socket.h>
#include <linux/in.h>

#ifndef NM_MAP_SIZE
#define NM_MAP_SIZE 65536
#endif
#ifndef NM_FILTER_NETNS
#define NM_FILTER_NETNS 0
#endif
#if !defined(NM_OFF_SOCK_NET) || !defined(NM_OFF_NET_NS_INUM)
#error "NM_OFF_SOCK_NET and NM_OFF_NET_NS_INUM must come from the running kernel's BTF (sniffer/btf.py)"
#endif

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

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->oldstate != NM_TCP_CLOSE || args->newstate != NM_TCP_SYN_SENT || args->protocol != IPPROTO_TCP)
        return 0;

    u32 zero = 0;
    struct conn_stats *st = stats.lookup(&zero);
    u32 *activep = active.lookup(&zero);
    if (!st || !activep)
        return 0;
    // Atomic add = full barrier on x86 (lock xadd): `enter` is visible before `active` is read, so
    // user space that flipped `active` and then saw this enter count knows to wait for our exit.
    __sync_fetch_and_add(&st->enter, 1);
    u32 buf = *activep & 1;

    struct conn_key key = {};
    void *sk = (void *)args->skaddr;
    void *net = 0;
    bpf_probe_read_kernel(&net, sizeof(net), sk + NM_OFF_SOCK_NET);
    if (net)
        bpf_probe_read_kernel(&key.netns, sizeof(key.netns), net + NM_OFF_NET_NS_INUM);
    if (NM_FILTER_NETNS && key.netns != NM_FILTER_NETNS)
        goto out;

    key.cgroup_id = bpf_get_current_cgroup_id();
    key.family = args->family;
    key.dport = args->dport;
    if (args->family == AF_INET) {
        __builtin_memcpy(key.saddr, args->saddr, 4);
        __builtin_memcpy(key.daddr, args->daddr, 4);
    } else if (args->family == AF_INET6) {
        __builtin_memcpy(key.saddr, args->saddr_v6, 16);
        __builtin_memcpy(key.daddr, args->daddr_v6, 16);
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
