"""Compile and load eBPF programs with bcc in a short-lived child process; hand back only the fds.

Why a child: bcc compiles with the LLVM/clang it links, and once libbcc is loaded those libraries
(plus the compiler's heap) stay mapped for the life of the process: ~200 MiB RSS for two small
programs. The child compiles, loads the programs into the kernel (not attached), sends their file
descriptors and those of their maps to the parent over a Unix socket (SCM_RIGHTS), and exits. The
kernel objects live on through the parent's descriptors; the parent attaches and drains them with
sniffer/libbpf.py and never imports bcc.

Parent side: `load_programs(...)`. Child side: `python -m sniffer.probe_loader FD` (FD: its end of a
socketpair; one JSON request in, one JSON reply plus the descriptors out).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sniffer.child_process import die_with_parent

log = logging.getLogger(__name__)

KERNEL_SOURCE = Path("/usr/src/netmapper-kernel-src")
PROG_TYPES = ("raw_tracepoint", "cgroup_skb")
MAX_REPLY = 1 << 20
LOAD_TIMEOUT_S = 120.0  # compile + load: ~0.5 s each here; generous for a busy node

# (size, [(field, offset)]) of a C type as bcc compiled it
Layout = tuple[int, list[tuple[str, int]]]


class LoadError(RuntimeError):
    """The child could not compile or load the programs; the message is bcc's reason."""


@dataclass(frozen=True)
class LoadedObjects:
    """Descriptors now owned by the caller (close them, or the kernel keeps the objects)."""

    programs: dict[str, int]
    maps: dict[str, int]
    layouts: dict[str, dict[str, Layout]]  # map name -> {"key": ..., "leaf": ...}

    def close(self) -> None:
        for fd in (*self.programs.values(), *self.maps.values()):
            try:
                os.close(fd)
            except OSError:
                pass


def load_programs(*, source: Path, cflags: list[str], programs: dict[str, str], maps: list[str],
                  connect_offsets_btf: Path | None = None, timeout: float = LOAD_TIMEOUT_S) -> LoadedObjects:
    """Compile `source` with `cflags` in a child; load each program (name -> type in PROG_TYPES).

    connect_offsets_btf: add the struct offsets bpf/tcp_connect.bpf.c needs, read from this BTF file
    in the child (sniffer/btf.py).
    """
    for name, kind in programs.items():
        if kind not in PROG_TYPES:
            raise ValueError(f"program {name}: unknown type {kind!r}")
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = dict(os.environ)
    if KERNEL_SOURCE.is_dir():
        # bcc needs one merged header tree (see scripts/setup.sh); an explicit setting wins.
        env.setdefault("BCC_KERNEL_SOURCE", str(KERNEL_SOURCE))
    with parent:
        try:
            proc = subprocess.Popen([sys.executable, "-m", "sniffer.probe_loader", str(child.fileno()), str(os.getpid())],
                                    pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            child.close()
        try:
            request = {"source": str(source), "cflags": cflags, "programs": programs, "maps": maps,
                       "connect_offsets_btf": str(connect_offsets_btf) if connect_offsets_btf else None}
            parent.sendall(json.dumps(request).encode() + b"\n")
            parent.settimeout(timeout)
            data, fds, _flags, _addr = socket.recv_fds(parent, MAX_REPLY, len(programs) + len(maps))
        except (OSError, TimeoutError) as e:
            proc.kill()
            proc.wait()
            raise LoadError(f"BPF loader process failed ({e}); its stderr is above") from e
        proc.wait(timeout=timeout)
    reply: dict[str, Any]
    try:
        reply = json.loads(data.decode()) if data else {"error": f"loader exited with status {proc.returncode}"}
    except ValueError:
        reply = {"error": "loader sent an unreadable reply"}
    if "error" in reply:
        for fd in fds:
            os.close(fd)
        raise LoadError(str(reply["error"]))
    names = [*reply["programs"], *reply["maps"]]
    if len(fds) != len(names):
        for fd in fds:
            os.close(fd)
        raise LoadError(f"loader sent {len(fds)} descriptors for {len(names)} objects")
    by_name = dict(zip(names, fds, strict=True))
    layouts = {m: {k: (int(v[0]), [(str(f), int(o)) for f, o in v[1]]) for k, v in kinds.items()}
               for m, kinds in reply["layouts"].items()}
    return LoadedObjects(programs={n: by_name[n] for n in reply["programs"]},
                         maps={n: by_name[n] for n in reply["maps"]}, layouts=layouts)


# -- child side ---------------------------------------------------------------------------------


def _layout(t: Any) -> list[Any]:
    import ctypes as ct

    return [ct.sizeof(t), [[name, getattr(t, name).offset] for name, *_ in getattr(t, "_fields_", [])]]


def _compile_and_load(request: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    from bcc import BPF

    cflags = list(request["cflags"])
    if request.get("connect_offsets_btf"):
        from sniffer import btf

        try:
            cflags += btf.connect_offsets(btf.load(Path(request["connect_offsets_btf"]))).cflags()
        except btf.BtfError as e:
            raise LoadError(f"cannot read kernel struct offsets from BTF: {e}") from e
    bpf = BPF(src_file=request["source"].encode(), cflags=cflags)
    types = {"raw_tracepoint": BPF.RAW_TRACEPOINT, "cgroup_skb": BPF.CGROUP_SKB}
    prog_names, map_names, fds = [], [], []
    for name, kind in request["programs"].items():
        fds.append(bpf.load_func(name.encode(), types[kind]).fd)
        prog_names.append(name)
    layouts: dict[str, Any] = {}
    for name in request["maps"]:
        table = bpf[name.encode()]
        fds.append(table.map_fd)
        map_names.append(name)
        kinds = {}
        for kind, attr in (("key", "Key"), ("leaf", "sLeaf"), ("leaf", "Leaf")):
            t = getattr(table, attr, None)
            if t is not None and kind not in kinds:
                kinds[kind] = _layout(t)
        layouts[name] = kinds
    return {"programs": prog_names, "maps": map_names, "layouts": layouts}, fds


def child_main(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return 1
        buf += chunk
    try:
        reply, fds = _compile_and_load(json.loads(buf))
    except Exception as e:  # noqa: BLE001 - bcc raises bare Exception; the parent reports it
        socket.send_fds(sock, [json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()], [])
        return 1
    socket.send_fds(sock, [json.dumps(reply).encode()], fds)
    return 0


if __name__ == "__main__":
    die_with_parent(int(sys.argv[2]))
    logging.basicConfig(level=logging.WARNING)
    sys.exit(child_main(int(sys.argv[1])))
