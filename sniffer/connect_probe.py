"""Adapter for bpf/tcp_connect.bpf.c: load it, attach it, drain its aggregation maps, decode records.

bcc compiles and loads the program in a short-lived child (sniffer/probe_loader.py), so the compiler
never stays mapped in the sniffer; this process holds only the program and map descriptors and works
them with libbpf (sniffer/libbpf.py). The program is a raw tracepoint attached as a BPF link: it
detaches when the process exits, however it exits.

The kernel aggregates connects by (cgroup id, netns, family, saddr, daddr, dport) into one of two
hash buffers. `drain()` flips the buffer the program writes, waits until no CPU is still inside the
program (per-CPU enter/exit counters), then reads and deletes the now writer-less buffer in batches.
So a connect is either in the drained buffer or in the next one: never half-counted or lost. Inserts
that fail (buffer full) are counted in the kernel and returned as `ProbeLoss`.

Keep aligned with bpf/tcp_connect.bpf.c (ConnKey/ConnVal/ConnStats mirror its structs; a test
compares them with the layouts bcc reports after compiling the C file).
"""
from __future__ import annotations

import ctypes as ct
import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from types import TracebackType

from netmapper_api.loss import LossSource
from sniffer import btf, libbpf
from sniffer.probe_loader import LoadedObjects, LoadError, load_programs
from sniffer.records import ConnectObservation, IPAddress, ProbeLoss

log = logging.getLogger(__name__)

BPF_SOURCE = Path(__file__).resolve().parents[1] / "bpf" / "tcp_connect.bpf.c"
RAW_TRACEPOINT = "inet_sock_set_state"
PROGRAM = "nm_inet_sock_set_state"
MAPS = ("conns0", "conns1", "active", "stats")
# Entries read per batch syscall: buffers for a whole 64k-entry map would be 6.8 MiB held for good.
DRAIN_CHUNK = 4096
DEFAULT_MAP_SIZE = 65536
AF_INET = 2
AF_INET6 = 10

LOSS_MAP_FULL = LossSource.KERNEL_MAP_FULL
# Keys the kernel inserted but the drain did not find. Impossible by construction; reported (not
# hidden, and logged apart) as kernel map loss so that a kernel or logic change that breaks the
# invariant shows up.
LOSS_UNACCOUNTED = LossSource.KERNEL_MAP_FULL


class ConnKey(ct.Structure):
    """struct conn_key in bpf/tcp_connect.bpf.c."""

    _fields_ = [
        ("cgroup_id", ct.c_uint64),
        ("netns", ct.c_uint32),
        ("family", ct.c_uint8),
        ("_pad0", ct.c_uint8 * 3),
        ("saddr", ct.c_uint8 * 16),
        ("daddr", ct.c_uint8 * 16),
        ("dport", ct.c_uint16),
        ("_pad1", ct.c_uint8 * 6),
    ]


class ConnVal(ct.Structure):
    """struct conn_val in bpf/tcp_connect.bpf.c."""

    _fields_ = [
        ("count", ct.c_uint64),
        ("first_seen_ns", ct.c_uint64),
        ("last_seen_ns", ct.c_uint64),
        ("pid", ct.c_uint32),
        ("comm", ct.c_char * 16),
        ("_pad", ct.c_uint8 * 4),
    ]


class ConnStats(ct.Structure):
    """struct conn_stats in bpf/tcp_connect.bpf.c (one per CPU)."""

    _fields_ = [
        ("enter", ct.c_uint64),
        ("exit", ct.c_uint64),
        ("new_keys", ct.c_uint64 * 2),
        ("insert_failed", ct.c_uint64 * 2),
    ]


class ProbeUnavailable(RuntimeError):
    """The probe cannot be loaded on this machine; the message says what to do."""


@dataclass(frozen=True, slots=True)
class DrainStats:
    """Bookkeeping of the last drain (for logs, metrics and the benchmark)."""

    buffer: int
    keys: int
    quiesce_seconds: float
    read_seconds: float


def check_environment(*, btf_path: Path = btf.VMLINUX_BTF) -> None:
    """Raise ProbeUnavailable with a remedy when root, the tracepoint, BTF, bcc or libbpf are missing."""
    if not _can_load_bpf():
        raise ProbeUnavailable("loading eBPF needs root (or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN): run the sniffer as root")
    if not btf_path.is_file():
        raise ProbeUnavailable(
            f"{btf_path} missing: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y needed for struct offsets)"
        )
    # Located, not imported: importing bcc maps LLVM into this process (the loader child imports it).
    if importlib.util.find_spec("bcc") is None:
        raise ProbeUnavailable(
            "bcc is not importable: install Debian python3-bpfcc and make it visible in the venv (scripts/setup.sh)"
        )
    try:
        libbpf.lib()
    except libbpf.LibbpfUnavailable as e:
        raise ProbeUnavailable(str(e)) from None


def _can_load_bpf() -> bool:
    """Root, or the capabilities that allow loading tracing programs (CAP_BPF+CAP_PERFMON, or SYS_ADMIN)."""
    if os.geteuid() == 0:
        return True
    cap_eff = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            cap_eff = int(line.split()[1], 16)
    cap_sys_admin, cap_perfmon, cap_bpf = 1 << 21, 1 << 38, 1 << 39
    return bool(cap_eff & cap_sys_admin) or (cap_eff & (cap_perfmon | cap_bpf)) == cap_perfmon | cap_bpf


def _ip(family: int, raw: ct.Array[ct.c_uint8]) -> IPAddress:
    data = bytes(raw)
    return IPv4Address(data[:4]) if family == AF_INET else IPv6Address(data)


def _comm(seen: dict[bytes, str], raw: bytes) -> str:
    comm = seen.get(raw)
    if comm is None:
        comm = seen[raw] = raw.decode(errors="replace")
    return comm


class ConnectProbe:
    """The TCP connect capture. Use as a context manager; call drain() every interval.

    map_size: entries per buffer (distinct edges between two drains before inserts fail).
    netns_filter: record only sockets in this network namespace inode (tests, benchmarks).
    """

    def __init__(
        self,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        netns_filter: int | None = None,
        source: Path = BPF_SOURCE,
        btf_path: Path = btf.VMLINUX_BTF,
        quiesce_timeout: float = 1.0,
    ) -> None:
        if map_size < 1:
            raise ValueError("map_size must be positive")
        self.map_size = map_size
        self.netns_filter = netns_filter
        self.source = source
        self.btf_path = btf_path
        self.quiesce_timeout = quiesce_timeout
        self.last_drain: DrainStats | None = None
        self._objects: LoadedObjects | None = None
        self._link_fd: int | None = None
        self._active = 0
        self._ncpus = 0
        # running kernel counters as of the previous drain (differences are what we report)
        self._seen_new_keys = [0, 0]
        self._seen_insert_failed = 0
        self._keys_buf: ct.Array[ConnKey] | None = None
        self._vals_buf: ct.Array[ConnVal] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def cflags(self) -> list[str]:
        """Defines besides the kernel offsets (which the loader child adds from BTF)."""
        return [f"-DNM_MAP_SIZE={self.map_size}", f"-DNM_FILTER_NETNS={self.netns_filter or 0}"]

    def open(self) -> None:
        if self._objects is not None:
            return
        check_environment(btf_path=self.btf_path)
        cflags = self.cflags()
        started = time.monotonic()
        try:
            # The BTF parse (~35 MiB of Python objects) happens in the child too.
            self._objects = load_programs(source=self.source, cflags=cflags, connect_offsets_btf=self.btf_path,
                                          programs={PROGRAM: "raw_tracepoint"}, maps=list(MAPS))
        except LoadError as e:
            raise ProbeUnavailable(
                f"cannot compile/load {self.source.name} with bcc: {e}. Check BCC_KERNEL_SOURCE "
                "(scripts/setup.sh prepares /usr/src/netmapper-kernel-src)"
            ) from e
        try:
            self._ncpus = libbpf.possible_cpus()
            self._active = self._read_active()
            stats = self._stats()
            self._seen_new_keys = [sum(s.new_keys[b] for s in stats) for b in (0, 1)]
            self._seen_insert_failed = sum(s.insert_failed[0] + s.insert_failed[1] for s in stats)
            try:
                self.attach()
            except FileNotFoundError:
                raise ProbeUnavailable(f"kernel has no tracepoint {RAW_TRACEPOINT} (Linux >= 4.16 needed)") from None
        except BaseException:
            self.close()
            raise
        log.info("tcp_connect loaded in %.2fs (map_size=%d, %s)", time.monotonic() - started, self.map_size, cflags)

    def detach(self) -> None:
        """Stop capturing but keep the maps (and anything not yet drained). For benchmarks and pauses."""
        if self._link_fd is not None:
            os.close(self._link_fd)
            self._link_fd = None

    def attach(self) -> None:
        """Start (or resume after detach()) capturing."""
        if self._link_fd is None:
            self._link_fd = libbpf.raw_tracepoint_open(RAW_TRACEPOINT, self._require().programs[PROGRAM])

    def close(self) -> None:
        self.detach()
        if self._objects is not None:
            self._objects.close()
            self._objects = None

    def __enter__(self) -> ConnectProbe:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- draining ----------------------------------------------------------------------------

    def drain(self) -> tuple[list[ConnectObservation], list[ProbeLoss]]:
        """Everything aggregated since the previous drain, and what the kernel could not keep."""
        objects = self._require()
        drained = self._active
        started = time.monotonic()
        libbpf.update(objects.maps["active"], ct.c_uint32(0), ct.c_uint32(drained ^ 1))
        self._active = drained ^ 1
        stats = self._quiesce()
        quiesced = time.monotonic()

        # CLOCK_MONOTONIC (bpf_ktime_get_ns) -> wall clock, sampled once per drain.
        wall_minus_mono = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        observations = self._lookup_and_delete_all(objects.maps[f"conns{drained}"], wall_minus_mono)

        losses: list[ProbeLoss] = []
        failed = sum(s.insert_failed[0] + s.insert_failed[1] for s in stats)
        if failed > self._seen_insert_failed:
            losses.append(ProbeLoss(source=LOSS_MAP_FULL, count=failed - self._seen_insert_failed))
        self._seen_insert_failed = failed
        new_keys = sum(s.new_keys[drained] for s in stats)
        missing = new_keys - self._seen_new_keys[drained] - len(observations)
        self._seen_new_keys[drained] = new_keys
        if missing > 0:
            log.error("tcp_connect buffer %d: kernel inserted %d more keys than drained", drained, missing)
            losses.append(ProbeLoss(source=LOSS_UNACCOUNTED, count=missing))
        elif missing < 0:  # entries this program did not insert: someone else writes the map
            log.error("tcp_connect buffer %d: drained %d keys the program never inserted", drained, -missing)
        self.last_drain = DrainStats(drained, len(observations), quiesced - started, time.monotonic() - quiesced)
        return observations, losses

    def _quiesce(self) -> list[ConnStats]:
        """Wait until every program that may have read the old `active` value has finished.

        A program increments its CPU's `enter` (atomically, a full barrier) before reading `active`,
        and `exit` when done. Any program that read the old value had incremented `enter` before our
        flip became visible, so it is finished once `exit` reaches the `enter` we read after the flip.
        """
        # The flip was a map-update syscall, which ends with an atomic op (full barrier), so the
        # enter counts read below cannot be older than the flip.
        stats = self._stats()
        target = [s.enter for s in stats]
        deadline = time.monotonic() + self.quiesce_timeout
        while True:
            stats = self._stats()
            if all(s.exit >= t for s, t in zip(stats, target, strict=True)):
                return stats
            if time.monotonic() > deadline:
                # Should never happen (programs run for microseconds); drain anyway, say so.
                log.warning("tcp_connect: a CPU stayed inside the program for %.1fs", self.quiesce_timeout)
                return stats
            time.sleep(0.0001)

    def _lookup_and_delete_all(self, map_fd: int, wall_minus_mono: int) -> list[ConnectObservation]:
        """Every entry of the (writer-less) buffer, deleted as it is read, DRAIN_CHUNK entries per call.

        Each chunk is turned into observations straight from the batch buffers: copying 10k keys and
        values out first held 20k ctypes objects (and their malloc'd buffers) per drain."""
        if self._keys_buf is None or self._vals_buf is None:
            n = min(self.map_size, DRAIN_CHUNK)
            self._keys_buf, self._vals_buf = (ConnKey * n)(), (ConnVal * n)()
        keys, vals = self._keys_buf, self._vals_buf
        out: list[ConnectObservation] = []
        comms: dict[bytes, str] = {}  # a few programs make most connects: one string each per drain
        try:
            for chunk in libbpf.lookup_and_delete_batches(map_fd, keys, vals, limit=self.map_size):
                for i in range(chunk):
                    key, val = keys[i], vals[i]  # views into the buffers, valid until the next batch
                    out.append(ConnectObservation(
                        cgroup_id=key.cgroup_id,
                        netns=key.netns,
                        saddr=_ip(key.family, key.saddr),
                        daddr=_ip(key.family, key.daddr),
                        dport=key.dport,
                        count=val.count,
                        first_seen=(val.first_seen_ns + wall_minus_mono) / 1e9,
                        last_seen=(val.last_seen_ns + wall_minus_mono) / 1e9,
                        pid=val.pid,
                        comm=_comm(comms, val.comm),
                    ))
        except OSError as e:
            raise OSError(e.errno, f"tcp_connect buffer: {e.strerror}") from e
        return out

    # -- helpers -----------------------------------------------------------------------------

    def _require(self) -> LoadedObjects:
        if self._objects is None:
            raise RuntimeError("ConnectProbe is not open (use it as a context manager or call open())")
        return self._objects

    def _read_active(self) -> int:
        value = ct.c_uint32(0)
        libbpf.lookup(self._require().maps["active"], ct.c_uint32(0), value)
        return int(value.value) & 1

    def _stats(self) -> list[ConnStats]:
        # A per-CPU map returns one value per possible CPU (each padded to 8 bytes; ConnStats is).
        per_cpu = (ConnStats * self._ncpus)()
        libbpf.lookup(self._require().maps["stats"], ct.c_uint32(0), per_cpu)
        return list(per_cpu)

    def kernel_layouts(self) -> dict[str, tuple[int, list[tuple[str, int]]]]:
        """(size, [(field, offset)]) of the key/value/stats types as bcc compiled them from the C file."""
        layouts = self._require().layouts
        return {"conn_key": layouts["conns0"]["key"], "conn_val": layouts["conns0"]["leaf"],
                "conn_stats": layouts["stats"]["leaf"]}
