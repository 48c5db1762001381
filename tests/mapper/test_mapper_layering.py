"""The mapper package never imports the sniffer: they share only the contract (netmapper_api).
The import-linter contracts in pyproject.toml check the whole layering; this guards it in pytest too."""
from __future__ import annotations

import ast
from pathlib import Path

import mapper


def test_mapper_does_not_import_sniffer() -> None:
    offenders = []
    for path in Path(mapper.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "sniffer" or n.startswith("sniffer.")]
    assert offenders == []
