"""Helper children of the sniffer (BPF loader, snapshot reader) die with it.

Without this, a sniffer killed while a child runs leaves the child behind: a compiler loading
probes nobody will use, or a reader parsing a snapshot for nobody.
"""
from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent exits; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not fatal: the child still ends when its pipe or socket closes
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request took effect
