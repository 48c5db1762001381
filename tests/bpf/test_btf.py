"""No root needed: the BTF parser on a hand-built blob, and on the running kernel's BTF if readable."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sniffer import btf


class BlobBuilder:
    """Writes a little-endian BTF blob the way the kernel lays it out (header, types, strings)."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.types = bytearray()

    def s(self, text: str) -> int:
        if not text:
            return 0
        off = len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def type(self, name: str, kind: int, vlen: int, size_or_type: int, trailer: bytes = b"", kflag: bool = False) -> None:
        info = (int(kflag) << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.s(name), info, size_or_type) + trailer

    def members(self, *ms: tuple[str, int, int]) -> bytes:
        return b"".join(struct.pack("<III", self.s(n), t, off) for n, t, off in ms)

    def blob(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings))
        return hdr + bytes(self.types) + bytes(self.strings)


@pytest.fixture
def sample() -> btf.Btf:
    b = BlobBuilder()
    b.type("unsigned int", btf.KIND_INT, 0, 4, struct.pack("<I", 32))  # 1
    b.type("inner", btf.KIND_STRUCT, 2, 8, b.members(("a", 1, 0), ("b", 1, 32)))  # 2
    b.type("inner_t", btf.KIND_TYPEDEF, 0, 2)  # 3
    b.type("", btf.KIND_CONST, 0, 3)  # 4: const inner_t
    b.type("", btf.KIND_UNION, 1, 4, b.members(("u_x", 1, 0)))  # 5: anonymous union
    b.type("E", btf.KIND_ENUM, 2, 4, struct.pack("<IiIi", b.s("E1"), 1, b.s("E2"), 2))  # 6: skipped by size
    b.type("", btf.KIND_FUNC_PROTO, 1, 1, struct.pack("<II", 0, 1))  # 7
    b.type("", btf.KIND_PTR, 0, 2)  # 8
    # 9: kind_flag struct: offsets carry bitfield_size << 24
    b.type(
        "outer", btf.KIND_STRUCT, 4, 32,
        b.members(("flags", 1, (3 << 24) | 0), ("", 5, 64), ("in", 4, 128), ("p", 8, 192)),
        kflag=True,
    )
    b.type("outer", btf.KIND_FWD, 0, 0)  # 10: a forward declaration must not confuse lookups
    return btf.parse(b.blob())


def test_plain_and_nested_members(sample: btf.Btf) -> None:
    assert btf.member_offset(sample, "inner", "b") == 4
    assert btf.member_offset(sample, "outer", "in") == 16
    # through CONST -> TYPEDEF -> STRUCT
    assert btf.member_offset(sample, "outer", "in.b") == 20


def test_anonymous_union_members_are_found(sample: btf.Btf) -> None:
    assert btf.member_offset(sample, "outer", "u_x") == 8


def test_bitfield_has_no_byte_offset(sample: btf.Btf) -> None:
    m = sample.member("outer", "flags")
    assert (m.bit_offset, m.bitfield_size) == (0, 3)
    with pytest.raises(btf.BtfError, match="bitfield"):
        _ = m.byte_offset


def test_missing_names_are_errors(sample: btf.Btf) -> None:
    with pytest.raises(btf.BtfError, match="not found"):
        btf.member_offset(sample, "nosuch", "a")
    with pytest.raises(btf.BtfError, match="no member"):
        btf.member_offset(sample, "inner", "c")
    with pytest.raises(btf.BtfError, match="not an embedded struct"):
        btf.member_offset(sample, "outer", "p.a")  # through a pointer: not one offset


def test_bad_magic_is_an_error() -> None:
    with pytest.raises(btf.BtfError, match="magic"):
        btf.parse(b"\x00" * 32)


@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").is_file(), reason="kernel has no BTF")
def test_running_kernel_offsets_are_plausible() -> None:
    kernel = btf.load()
    offsets = btf.connect_offsets(kernel)
    # Cross-check the dotted walk against the single-step lookups it is made of.
    assert btf.member_offset(kernel, "sock", "__sk_common") == 0
    skc = dict(offsets.skc)
    assert skc["NET"] == btf.member_offset(kernel, "sock_common", "skc_net")
    assert skc["FAMILY"] == btf.member_offset(kernel, "sock_common", "skc_family")
    # The one read of sock_common covers every field the program takes from it.
    assert offsets.skc_span % 8 == 0 and offsets.skc_span >= skc["V6_RCV_SADDR"] + 16
    assert offsets.sk_protocol == btf.member_offset(kernel, "sock", "sk_protocol")
    assert btf.has_raw_tracepoint(kernel, "inet_sock_set_state")
    assert not btf.has_raw_tracepoint(kernel, "no_such_tracepoint")
    assert offsets.net_ns_inum == btf.member_offset(kernel, "net", "ns") + btf.member_offset(kernel, "ns_common", "inum")
    assert btf.load() is kernel  # parsed once per process
