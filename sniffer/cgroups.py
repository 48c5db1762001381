"""Which pod a connecting task belongs to, from its cgroup: how hostNetwork pods are told apart.

hostNetwork pods share the node's IP, so their connects cannot be attributed by address. kubelet
puts every pod's containers under a cgroup whose path carries the pod UID:
  systemd driver:  .../kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope
  cgroupfs driver: .../kubepods/burstable/pod<uid>/<container id>
We map the cgroup v2 id the kernel reports (the directory's inode) to a path by scanning the
cgroup v2 tree, and, for cgroup v1 hosts (where the v2 id says nothing about pods), read
/proc/<pid>/cgroup of the connecting process while it still exists.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
POD_UID_RE = re.compile(rf"pod({_UID})")
MAX_DIRS = 200_000  # a scan stops here: a pathological tree must not stall the drain loop


def pod_uid_from_path(path: str) -> str | None:
    """The pod UID a kubelet cgroup path encodes (either driver), or None."""
    m = POD_UID_RE.search(path)
    return m.group(1).replace("_", "-") if m else None


def find_cgroup2_root(mounts_file: str = "/proc/self/mounts") -> str:
    """The cgroup v2 root: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on pure v2 hosts."""
    cgroup2: list[str] = []
    with open(mounts_file, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "cgroup2":
                cgroup2.append(parts[1])
    for preferred in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if preferred in cgroup2:
            return preferred
    if cgroup2:
        return cgroup2[0]
    raise RuntimeError("no cgroup v2 hierarchy is mounted: the DNS probe needs one (mount -t cgroup2 none /sys/fs/cgroup/unified)")


def _cgroup2_root_or_none() -> Path | None:
    try:
        return Path(find_cgroup2_root())
    except (RuntimeError, OSError):
        return None  # cgroup v1 only: the /proc/<pid>/cgroup fallback still works


@dataclass
class CgroupPodMap:
    """cgroup v2 id (and pid) -> pod UID, rescanning the tree at most every `rescan_interval` s."""

    root: Path | None = field(default_factory=_cgroup2_root_or_none)
    proc: Path = Path("/proc")
    rescan_interval: float = 1.0
    _by_id: dict[int, str | None] = field(default_factory=dict)
    _scanned_at: float = field(default=-1e9)

    def pod_uid(self, cgroup_id: int, pid: int = 0) -> str | None:
        uid = self._by_id.get(cgroup_id)
        if uid is None and cgroup_id not in self._by_id and time.monotonic() - self._scanned_at >= self.rescan_interval:
            self.rescan()
            uid = self._by_id.get(cgroup_id)
            if uid is None and len(self._by_id) < MAX_DIRS:
                self._by_id[cgroup_id] = None  # ids are never reused: not a pod now, never a pod
        if uid is None and pid > 0:
            uid = self._from_pid(pid)
        return uid

    def rescan(self) -> None:
        self._scanned_at = time.monotonic()
        if self.root is None:
            return
        found: dict[int, str | None] = {}
        seen = 0
        for dirpath, dirnames, _ in os.walk(self.root):
            seen += 1
            if seen > MAX_DIRS:
                log.warning("cgroup tree under %s has more than %d directories; scan cut short", self.root, MAX_DIRS)
                break
            uid = pod_uid_from_path(dirpath)
            if uid is not None:
                try:
                    found[os.stat(dirpath).st_ino] = uid
                except OSError:
                    continue  # removed while we walked
        self._by_id = {**{k: v for k, v in self._by_id.items() if v is None}, **found}

    def _from_pid(self, pid: int) -> str | None:
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return None  # the process is gone: nothing more to learn
        for line in text.splitlines():
            uid = pod_uid_from_path(line.split(":", 2)[-1])
            if uid is not None:
                return uid
        return None
