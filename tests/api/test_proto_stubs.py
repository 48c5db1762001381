"""The committed gRPC stubs are exactly what scripts/gen_proto.sh makes from proto/."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True, cwd=ROOT,
                   env={**os.environ, "PY": sys.executable})
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "netmapper_api" / "v1").glob("*_pb2*.py*"))
    assert generated, "gen_proto.sh produced nothing"
    stale = [str(p) for p in generated if (ROOT / p).read_text() != (tmp_path / p).read_text()]
    assert not stale, f"stale stubs (run `make proto`): {stale}"


def test_every_api_field_is_documented() -> None:
    """Hubble's habit: each field's comment starts with its name, so the API reads without the code."""
    for proto in (ROOT / "proto" / "netmapper_api" / "v1").glob("*.proto"):
        lines = proto.read_text().splitlines()
        in_message = False
        for i, line in enumerate(lines):
            s = line.strip()
            if s.startswith("message "):
                in_message = True
            if in_message and "=" in s and s.endswith(";") and not s.startswith("//") and not s.startswith("option"):
                name = s.split("=")[0].split()[-1]
                if name.isupper():  # enum values: their names say it
                    continue
                start = i - 1  # the comment block right above the field; one of its lines starts with the name
                while start > 0 and lines[start - 1].strip().startswith("//"):
                    start -= 1
                block = [ln.strip() for ln in lines[start:i]]
                assert any(ln.startswith(f"// {name}:") for ln in block), f"{proto.name}:{i + 1}: {name} undocumented"
