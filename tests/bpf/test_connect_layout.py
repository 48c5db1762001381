"""No root needed: the C structs of bpf/tcp_connect.bpf.c and their ctypes mirrors cannot drift.

The C side is read from the source (field types and names), laid out with ctypes' C rules, and
compared field by field with sniffer/connect_probe.py. The bpf-marked twin of this test compares the
mirrors with what bcc actually compiled.
"""
from __future__ import annotations

import ctypes as ct
import re
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from sniffer import connect_probe
from sniffer.connect_probe import BPF_SOURCE, ConnKey, ConnStats, ConnVal, ProbeUnavailable

C_TYPES: dict[str, Any] = {
    "u8": ct.c_uint8,
    "u16": ct.c_uint16,
    "u32": ct.c_uint32,
    "u64": ct.c_uint64,
    "char": ct.c_char,
}
FIELD = re.compile(r"^\s*(\w+)\s+(\w+)(?:\[(\d+)\])?;\s*$")


def c_struct(name: str) -> type[ct.Structure]:
    """ctypes layout of `struct name { ... };` as written in the BPF source."""
    body = re.search(rf"struct {name} \{{(.*?)\}};", BPF_SOURCE.read_text(), re.S)
    assert body, f"struct {name} not found in {BPF_SOURCE}"
    fields: list[tuple[str, Any]] = []
    for line in body.group(1).strip().splitlines():
        m = FIELD.match(line)
        assert m, f"unparsed field line in struct {name}: {line!r}"
        ctype, field, count = m.groups()
        base = C_TYPES[ctype]
        fields.append((field, base * int(count) if count else base))
    return type(name, (ct.Structure,), {"_fields_": fields})


def layout(t: type[ct.Structure]) -> list[tuple[str, int, int]]:
    return [(name, getattr(t, name).offset, getattr(t, name).size) for name, *_ in t._fields_]


@pytest.mark.parametrize(("c_name", "mirror"), [("conn_key", ConnKey), ("conn_val", ConnVal), ("conn_stats", ConnStats)])
def test_c_struct_matches_python_mirror(c_name: str, mirror: type[ct.Structure]) -> None:
    c = c_struct(c_name)
    assert layout(c) == layout(mirror)
    assert ct.sizeof(c) == ct.sizeof(mirror)


@pytest.mark.parametrize("c_name", ["conn_key", "conn_val", "conn_stats"])
def test_c_struct_has_no_implicit_padding(c_name: str) -> None:
    # Implicit holes in a hash key would hold garbage and split one edge into many keys.
    c = c_struct(c_name)
    assert sum(size for _, _, size in layout(c)) == ct.sizeof(c)


def test_documented_sizes() -> None:
    assert (ct.sizeof(ConnKey), ct.sizeof(ConnVal)) == (56, 48)


def test_addresses_decode_by_family() -> None:
    key6 = ConnKey(family=10)
    key6.daddr[15] = 1
    assert connect_probe._ip(10, key6.daddr) == ip_address("::1")
    key4 = ConnKey(family=2)
    key4.daddr[0], key4.daddr[3] = 127, 1
    key4.daddr[4] = 0xFF  # bytes past the IPv4 address are ignored
    assert connect_probe._ip(2, key4.daddr) == ip_address("127.0.0.1")


def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connect_probe, "_can_load_bpf", lambda: False)
    with pytest.raises(ProbeUnavailable, match="root"):
        connect_probe.check_environment()


def test_missing_btf_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connect_probe, "_can_load_bpf", lambda: True)
    with pytest.raises(ProbeUnavailable, match="BTF"):
        connect_probe.check_environment(btf_path=Path("/nonexistent/vmlinux"))
