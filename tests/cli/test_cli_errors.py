"""Every CLI failure is one clear line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netmapper.cli import edges
from netmapper.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def netmapper(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netmapper.cli.main", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def assert_one_line_error(res: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for text in expected:
        assert text in lines[0]


def test_sniffer_with_a_missing_snapshot(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    res = netmapper("sniffer", "run", "--mapper", "127.0.0.1:1", "--snapshot", str(missing))
    assert_one_line_error(res, "netmapper sniffer:", str(missing), "No such file")


def test_sniffer_with_a_snapshot_that_is_not_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: [unclosed\n")
    res = netmapper("sniffer", "run", "--mapper", "127.0.0.1:1", "--snapshot", str(bad))
    assert_one_line_error(res, "netmapper sniffer:", str(bad), "not valid YAML")


def test_sniffer_with_a_snapshot_object_without_kind(tmp_path: Path) -> None:
    bad = tmp_path / "nokind.json"
    bad.write_text('{"apiVersion": "v1", "kind": "List", "items": [{"metadata": {"name": "x"}}]}')
    res = netmapper("sniffer", "run", "--mapper", "127.0.0.1:1", "--snapshot", str(bad))
    assert_one_line_error(res, "netmapper sniffer:", "without 'kind'")


def test_unexpected_errors_are_one_line_too(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(_args: object) -> int:
        raise RuntimeError("something\nbroke   badly")

    monkeypatch.setattr(edges, "run", boom)  # read when the parser is built
    assert cli_main.main(["edges"]) == 1
    err = capsys.readouterr().err
    assert err == "netmapper edges: something broke badly\n"


def test_os_errors_name_the_file() -> None:
    err = FileNotFoundError(2, "No such file or directory", "/etc/nowhere")
    assert cli_main.one_line(err) == "/etc/nowhere: No such file or directory"
