"""Pod UIDs from kubelet cgroup layouts: systemd and cgroupfs drivers, cgroup v2 ids and v1 /proc files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sniffer.cgroups import CgroupPodMap, pod_uid_from_path

UID = "8f2c1e7a-3b4d-4c5e-9f60-7a8b9c0d1e2f"


@pytest.mark.parametrize("path", [
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/cri-containerd-abc.scope",
    f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/docker-0123.scope",
    f"/kubepods/besteffort/pod{UID}/0123456789abcdef",
    f"/kubepods/pod{UID}/0123456789abcdef",
])
def test_both_kubelet_drivers(path: str) -> None:
    assert pod_uid_from_path(path) == UID


def test_non_pod_cgroups_have_no_uid() -> None:
    assert pod_uid_from_path("/system.slice/containerd.service") is None
    assert pod_uid_from_path("/kubepods.slice/kubepods-burstable.slice") is None


def test_cgroup_v2_id_is_the_directory_inode(tmp_path: Path) -> None:
    leaf = tmp_path / "kubepods.slice" / f"kubepods-pod{UID.replace('-', '_')}.slice" / "cri-containerd-1.scope"
    leaf.mkdir(parents=True)
    (tmp_path / "system.slice").mkdir()
    cg = CgroupPodMap(root=tmp_path, rescan_interval=0)
    assert cg.pod_uid(os.stat(leaf).st_ino) == UID
    assert cg.pod_uid(os.stat(tmp_path / "system.slice").st_ino) is None
    late = tmp_path / "kubepods" / "pod11111111-2222-3333-4444-555555555555" / "c"
    late.mkdir(parents=True)  # a pod started after the first scan is found by the next one
    assert cg.pod_uid(os.stat(late).st_ino) == "11111111-2222-3333-4444-555555555555"


def test_cgroup_v1_hosts_fall_back_to_the_process_cgroup_file(tmp_path: Path) -> None:
    (tmp_path / "321").mkdir()
    (tmp_path / "321" / "cgroup").write_text(
        f"12:memory:/kubepods/burstable/pod{UID}/abc\n0::/system.slice/containerd.service\n")
    cg = CgroupPodMap(root=None, proc=tmp_path)
    assert cg.pod_uid(999, pid=321) == UID
    assert cg.pod_uid(999, pid=322) is None  # the process is gone
