"""Struct member offsets of the running kernel, read from its BTF (/sys/kernel/btf/vmlinux).

Why: bcc compiles against whatever kernel headers are installed, and those may describe another
kernel (Debian 6.1 headers on a 6.18 kernel: `net.ns.inum` at 144 instead of 176). Reading a field
through a header struct then silently returns garbage. The probes therefore read kernel memory at
offsets computed here from BTF and passed to the C code as `-D` defines.

The parser reads the BTF binary directly (header, type section, string section; format documented in
the kernel's Documentation/bpf/btf.rst). Only what offset lookups need is decoded: STRUCT/UNION
members (with kind_flag bitfield encoding and anonymous members) and the modifier chains
(TYPEDEF/CONST/VOLATILE/RESTRICT/TYPE_TAG) between a member and the struct it names.
"""
from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

BTF_MAGIC = 0xEB9F

# BTF_KIND_* values (include/uapi/linux/btf.h)
KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

# Bytes that follow the 12-byte common btf_type header: (fixed, per vlen item).
_TRAILER: dict[int, tuple[int, int]] = {
    KIND_INT: (4, 0),
    KIND_PTR: (0, 0),
    KIND_ARRAY: (12, 0),
    KIND_STRUCT: (0, 12),
    KIND_UNION: (0, 12),
    KIND_ENUM: (0, 8),
    KIND_FWD: (0, 0),
    KIND_TYPEDEF: (0, 0),
    KIND_VOLATILE: (0, 0),
    KIND_CONST: (0, 0),
    KIND_RESTRICT: (0, 0),
    KIND_FUNC: (0, 0),
    KIND_FUNC_PROTO: (0, 8),
    KIND_VAR: (4, 0),
    KIND_DATASEC: (0, 12),
    KIND_FLOAT: (0, 0),
    KIND_DECL_TAG: (4, 0),
    KIND_TYPE_TAG: (0, 0),
    KIND_ENUM64: (0, 12),
}
_MODIFIERS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})


class BtfError(Exception):
    """BTF missing, malformed, or without the requested type/member."""


@dataclass(frozen=True, slots=True)
class BtfType:
    type_id: int
    kind: int
    name: str
    kind_flag: bool
    vlen: int
    size_or_type: int  # size for STRUCT/UNION/INT/ENUM, referenced type id for PTR/TYPEDEF/...
    trailer_pos: int  # file position of the kind-specific data


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member; offsets are relative to the start of the outermost struct searched."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 when not a bitfield

    @property
    def byte_offset(self) -> int:
        if self.bitfield_size or self.bit_offset % 8:
            raise BtfError(f"member {self.name!r} is a bitfield (bit offset {self.bit_offset}), no byte offset")
        return self.bit_offset // 8


@dataclass(frozen=True)
class Btf:
    """A parsed BTF blob. Types are indexed lazily from their positions; names are looked up by kind."""

    data: bytes
    types: tuple[BtfType, ...]  # index = type id; index 0 is a placeholder for void
    str_start: int
    str_end: int

    def string(self, offset: int) -> str:
        pos = self.str_start + offset
        end = self.data.index(b"\0", pos, self.str_end)
        return self.data[pos:end].decode()

    def type(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self.types):
            raise BtfError(f"BTF type id {type_id} out of range")
        return self.types[type_id]

    @functools.cached_property
    def _composites_by_name(self) -> dict[str, list[BtfType]]:
        by_name: dict[str, list[BtfType]] = {}
        for t in self.types[1:]:
            if t.kind in (KIND_STRUCT, KIND_UNION) and t.name:
                by_name.setdefault(t.name, []).append(t)
        return by_name

    def composites(self, name: str) -> list[BtfType]:
        """All STRUCT/UNION definitions named `name` (a kernel may carry a few non-deduplicated copies)."""
        return self._composites_by_name.get(name, [])

    def resolve(self, type_id: int) -> BtfType:
        """Follow TYPEDEF/CONST/VOLATILE/RESTRICT/TYPE_TAG to the underlying type."""
        t = self.type(type_id)
        for _ in range(64):  # bounded: BTF chains are short, a loop would be a corrupt blob
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.size_or_type)
        raise BtfError(f"modifier chain from type {type_id} too long")

    def members(self, t: BtfType) -> Iterator[Member]:
        if t.kind not in (KIND_STRUCT, KIND_UNION):
            raise BtfError(f"type {t.type_id} ({t.name or 'anon'}) is not a struct or union")
        for i in range(t.vlen):
            name_off, type_id, offset = struct.unpack_from("<III", self.data, t.trailer_pos + 12 * i)
            if t.kind_flag:  # kind_flag: offset holds bitfield_size << 24 | bit_offset
                bit_offset, bitfield_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bitfield_size = offset, 0
            yield Member(self.string(name_off), type_id, bit_offset, bitfield_size)

    def find_member(self, t: BtfType, name: str) -> Member | None:
        """Member `name` of t, searching inside anonymous struct/union members; offset relative to t."""
        for m in self.members(t):
            if m.name == name:
                return m
            if not m.name:
                inner = self.resolve(m.type_id)
                if inner.kind in (KIND_STRUCT, KIND_UNION):
                    found = self.find_member(inner, name)
                    if found is not None:
                        return Member(found.name, found.type_id, m.bit_offset + found.bit_offset, found.bitfield_size)
        return None

    def member(self, struct_name: str, path: str) -> Member:
        """Member at dotted `path` (e.g. "ns.inum") of `struct struct_name`, offset from its start.

        Each step after the first must name a member embedded by value (not through a pointer).
        """
        candidates = self.composites(struct_name)
        if not candidates:
            raise BtfError(f"struct {struct_name} not found in BTF")
        results: set[Member] = set()
        for t in candidates:
            m = self._walk(t, path)
            if m is not None:
                results.add(m)
        if not results:
            raise BtfError(f"struct {struct_name} has no member {path!r}")
        if len(results) > 1:
            raise BtfError(f"struct {struct_name}.{path} is ambiguous in BTF: {sorted(r.bit_offset for r in results)}")
        return results.pop()

    def _walk(self, t: BtfType, path: str) -> Member | None:
        bit_offset = 0
        current: BtfType = t
        found: Member | None = None
        for step in path.split("."):
            if found is not None:
                current = self.resolve(found.type_id)
                if current.kind not in (KIND_STRUCT, KIND_UNION):
                    raise BtfError(f"{step!r} in {path!r}: parent member is not an embedded struct/union")
            m = self.find_member(current, step)
            if m is None:
                return None
            bit_offset += m.bit_offset
            found = Member(m.name, m.type_id, bit_offset, m.bitfield_size)
        return found


def parse(data: bytes) -> Btf:
    """Parse a BTF blob (the vmlinux BTF is self-contained: no base BTF needed)."""
    if len(data) < 24:
        raise BtfError("BTF blob too short")
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    if magic != BTF_MAGIC:
        raise BtfError(f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    type_start = hdr_len + type_off
    type_end = type_start + type_len
    str_start = hdr_len + str_off
    if type_end > len(data) or str_start + str_len > len(data):
        raise BtfError("BTF sections run past the end of the blob")

    types: list[BtfType] = [BtfType(0, 0, "", False, 0, 0, 0)]
    strings = data[str_start : str_start + str_len]
    unpack = struct.Struct("<III").unpack_from
    pos = type_start
    while pos < type_end:
        name_off, info, size_or_type = unpack(data, pos)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        trailer = _TRAILER.get(kind)
        if trailer is None:
            raise BtfError(f"unknown BTF kind {kind} at type {len(types)}")
        # Names resolved now (cheap slice) so lookups need no second pass.
        name = strings[name_off : strings.index(b"\0", name_off)].decode() if name_off else ""
        types.append(BtfType(len(types), kind, name, bool(info >> 31), vlen, size_or_type, pos + 12))
        pos += 12 + trailer[0] + trailer[1] * vlen
    return Btf(data=data, types=tuple(types), str_start=str_start, str_end=str_start + str_len)


@functools.lru_cache(maxsize=4)
def load(path: Path = VMLINUX_BTF) -> Btf:
    """Parse a BTF file once per process (the vmlinux BTF does not change while the kernel runs)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BtfError(
            f"{path} not found: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF); netmapper needs it to read "
            "struct offsets of the running kernel"
        ) from None
    except PermissionError:
        raise BtfError(f"cannot read {path}: run as root") from None
    return parse(data)


def has_raw_tracepoint(btf: Btf, name: str) -> bool:
    """Whether the kernel has tracepoint `name`: each one has a `btf_trace_<name>` typedef in BTF."""
    wanted = f"btf_trace_{name}"
    return any(t.kind == KIND_TYPEDEF and t.name == wanted for t in btf.types)


def member_offset(btf: Btf, struct_name: str, path: str) -> int:
    """Byte offset of `path` (dotted, e.g. "ns.inum") inside `struct struct_name`."""
    return btf.member(struct_name, path).byte_offset


# struct sock_common members bpf/tcp_connect.bpf.c reads (define suffix, member path, size in bytes)
_SKC_FIELDS = (
    ("DADDR", "skc_daddr", 4),
    ("RCV_SADDR", "skc_rcv_saddr", 4),
    ("DPORT", "skc_dport", 2),
    ("FAMILY", "skc_family", 2),
    ("NET", "skc_net.net", 8),
    ("V6_DADDR", "skc_v6_daddr", 16),
    ("V6_RCV_SADDR", "skc_v6_rcv_saddr", 16),
)
MAX_SKC_SPAN = 256


@dataclass(frozen=True, slots=True)
class ConnectOffsets:
    """Kernel offsets bpf/tcp_connect.bpf.c needs (see its header comment)."""

    skc: tuple[tuple[str, int], ...]  # (define suffix, offset in struct sock_common)
    skc_span: int  # bytes of sock_common that cover every field in skc, rounded up to 8
    sk_protocol: int  # struct sock -> sk_protocol (u16); -1 when it is a bitfield (kernels < 5.6)
    net_ns_inum: int  # struct net -> ns.inum (unsigned int)

    def cflags(self) -> list[str]:
        return [
            *(f"-DNM_OFF_SKC_{name}={off}" for name, off in self.skc),
            f"-DNM_SKC_SPAN={self.skc_span}",
            f"-DNM_OFF_SK_PROTOCOL={self.sk_protocol}",
            f"-DNM_OFF_NET_NS_INUM={self.net_ns_inum}",
        ]


def connect_offsets(btf: Btf) -> ConnectOffsets:
    # __sk_common is the first member of struct sock, so these are offsets into the socket too.
    # skc_net is possible_net_t, a struct wrapping `struct net *net` (absent when !CONFIG_NET_NS).
    if member_offset(btf, "sock", "__sk_common") != 0:
        raise BtfError("struct sock does not start with __sk_common")
    skc = tuple((name, member_offset(btf, "sock_common", path)) for name, path, _ in _SKC_FIELDS)
    end = max(off + size for (_, off), (_, _, size) in zip(skc, _SKC_FIELDS, strict=True))
    span = (end + 7) // 8 * 8
    if span > MAX_SKC_SPAN:
        raise BtfError(f"struct sock_common fields span {span} bytes (more than {MAX_SKC_SPAN})")
    protocol = btf.member("sock", "sk_protocol")
    sk_protocol = -1 if protocol.bitfield_size or protocol.bit_offset % 8 else protocol.byte_offset
    return ConnectOffsets(skc=skc, skc_span=span, sk_protocol=sk_protocol,
                          net_ns_inum=member_offset(btf, "net", "ns.inum"))
