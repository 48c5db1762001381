"""The few libbpf calls the running sniffer needs, through ctypes, on file descriptors it was handed.

Why not bcc here: importing bcc loads libbcc, which maps LLVM and clang (~200 MiB RSS that stays after
the programs are loaded). The sniffer compiles and loads its programs in a short-lived child process
(sniffer/probe_loader.py) and keeps only the program and map file descriptors; everything it does with
them afterwards (map reads and writes, batch drains, attaching, ring buffer polling) is here, on
Debian's libbpf.so.1 (~0.3 MiB, a dependency of bcc's own packages). Errors become OSError with errno.
"""
from __future__ import annotations

import ctypes as ct
import ctypes.util
import errno
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

LIBBPF_NAMES = ("libbpf.so.1", "libbpf.so")

# enum bpf_attach_type (include/uapi/linux/bpf.h)
BPF_CGROUP_INET_INGRESS = 0

# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
RingBufferCallback = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_size_t)


class LibbpfUnavailable(RuntimeError):
    """libbpf.so.1 cannot be loaded; the message says what to install."""


@functools.lru_cache(maxsize=1)
def lib() -> Any:
    """libbpf, loaded once per process, with the signatures this module uses declared."""
    found = ctypes.util.find_library("bpf")
    last: OSError | None = None
    for name in (*LIBBPF_NAMES, *([found] if found else [])):
        try:
            so = ct.CDLL(name, use_errno=True)
            break
        except OSError as e:
            last = e
    else:
        raise LibbpfUnavailable(f"libbpf.so.1 not found ({last}): install Debian libbpf1 (scripts/setup.sh)")
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "bpf_map_lookup_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p]),
        "bpf_map_update_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_uint64]),
        "bpf_map_lookup_and_delete_batch": (
            ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_void_p, ct.c_void_p, ct.POINTER(ct.c_uint32), ct.c_void_p]),
        "bpf_raw_tracepoint_open": (ct.c_int, [ct.c_char_p, ct.c_int]),
        "bpf_link_create": (ct.c_int, [ct.c_int, ct.c_int, ct.c_int, ct.c_void_p]),
        "libbpf_num_possible_cpus": (ct.c_int, []),
        "ring_buffer__new": (ct.c_void_p, [ct.c_int, RingBufferCallback, ct.c_void_p, ct.c_void_p]),
        "ring_buffer__poll": (ct.c_int, [ct.c_void_p, ct.c_int]),
        "ring_buffer__consume": (ct.c_int, [ct.c_void_p]),
        "ring_buffer__free": (None, [ct.c_void_p]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = restype, argtypes
    return so


def _check(res: int, what: str) -> int:
    """libbpf 1.x returns -errno (and sets errno) on failure."""
    if res < 0:
        err = -res if res != -1 else (ct.get_errno() or errno.EIO)
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return res


def possible_cpus() -> int:
    return int(_check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus"))


def lookup(map_fd: int, key: ct._CData, value: ct._CData) -> bool:
    """Fill `value` with the entry at `key`; False when there is none."""
    res = lib().bpf_map_lookup_elem(map_fd, ct.byref(key), ct.byref(value))
    if res < 0 and ct.get_errno() == errno.ENOENT:
        return False
    _check(res, "BPF_MAP_LOOKUP_ELEM")
    return True


def update(map_fd: int, key: ct._CData, value: ct._CData) -> None:
    _check(lib().bpf_map_update_elem(map_fd, ct.byref(key), ct.byref(value), 0), "BPF_MAP_UPDATE_ELEM")


def lookup_and_delete_batches(map_fd: int, keys: ct.Array[Any], values: ct.Array[Any], *,
                              limit: int) -> Iterator[int]:
    """BPF_MAP_LOOKUP_AND_DELETE_BATCH over a whole hash map, len(keys) entries at a time.

    Yields the number of entries placed at the start of keys/values; read them before the next step.
    Only for a map nobody writes meanwhile (the connect probe's inactive buffer). limit: the map's
    max_entries (bounds the walk).
    """
    capacity = len(keys)
    in_batch, out_batch, count = ct.c_uint32(0), ct.c_uint32(0), ct.c_uint32(0)
    first = True
    for _ in range(limit + 1):  # each call returns >= 1 entry or ends the walk
        count.value = capacity
        res = lib().bpf_map_lookup_and_delete_batch(
            map_fd, None if first else ct.byref(in_batch), ct.byref(out_batch), keys, values, ct.byref(count), None)
        err = ct.get_errno()
        if count.value:
            yield count.value
        if res < 0:
            if err == errno.ENOENT:  # walked past the last bucket
                return
            raise OSError(err, f"BPF_MAP_LOOKUP_AND_DELETE_BATCH: {os.strerror(err)}")
        first = False
        in_batch.value = out_batch.value


def raw_tracepoint_open(name: str, prog_fd: int) -> int:
    """Attach a raw tracepoint program; the returned link fd detaches it when closed (or the process dies)."""
    return int(_check(lib().bpf_raw_tracepoint_open(name.encode(), prog_fd), f"BPF_RAW_TRACEPOINT_OPEN {name}"))


def cgroup_link_create(prog_fd: int, cgroup_fd: int, attach_type: int) -> int:
    """Attach a cgroup program as a BPF link (goes away with its last fd, unlike a legacy attachment)."""
    return int(_check(lib().bpf_link_create(prog_fd, cgroup_fd, attach_type, None), "BPF_LINK_CREATE"))


class RingBuffer:
    """libbpf's ring buffer consumer on one BPF_MAP_TYPE_RINGBUF fd; `on_record(bytes)` per record."""

    def __init__(self, map_fd: int, on_record: Callable[[bytes], None]) -> None:
        def callback(_ctx: Any, data: Any, size: int) -> int:
            # Runs inside ring_buffer__poll(); an exception must not cross into C.
            try:
                on_record(ct.string_at(data, size))
            except Exception:  # noqa: BLE001 - the caller's decoder counts bad records itself
                pass
            return 0

        self._callback = RingBufferCallback(callback)  # kept referenced: libbpf holds the pointer
        ptr = lib().ring_buffer__new(map_fd, self._callback, None, None)
        if not ptr:
            err = ct.get_errno() or errno.EINVAL
            raise OSError(err, f"ring_buffer__new: {os.strerror(err)}")
        self._ptr: int | None = ptr

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms for records and consume what is there; returns how many were consumed."""
        res = lib().ring_buffer__poll(self._require(), timeout_ms)
        if res < 0 and -res == errno.EINTR:
            return 0
        return int(_check(res, "ring_buffer__poll"))

    def consume(self) -> int:
        return int(_check(lib().ring_buffer__consume(self._require()), "ring_buffer__consume"))

    def close(self) -> None:
        if self._ptr is not None:
            lib().ring_buffer__free(self._ptr)
            self._ptr = None

    def _require(self) -> int:
        if self._ptr is None:
            raise RuntimeError("ring buffer closed")
        return self._ptr
