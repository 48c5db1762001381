"""ClientIntents as text (YAML or JSON) and as files (one file, or a directory with one per client)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from netmapper.intents.documents import Document
from netmapper.intents.yaml_writer import render_yaml

OutputFormat = Literal["yaml", "json"]
OutputType = Literal["single-file", "dir"]


def render_json(documents: Sequence[Document]) -> str:
    """A JSON array of the documents (what `otterize network-mapper export --format json` prints)."""
    return json.dumps(list(documents), indent=2) + "\n"


def render(documents: Sequence[Document], fmt: OutputFormat = "yaml") -> str:
    if fmt == "yaml":
        return render_yaml(documents)
    if fmt == "json":
        return render_json(documents)
    raise ValueError(f"format must be yaml or json, not {fmt!r}")


def _file_name(doc: Document, fmt: OutputFormat) -> str:
    meta = doc["metadata"]
    # Kubernetes names cannot contain "/", but edges come from the network: never write outside the dir.
    stem = f"{meta['namespace']}.{meta['name']}".replace("/", "_").replace("\\", "_")
    if stem.startswith("."):
        stem = "_" + stem
    return f"{stem}.{fmt}"


def write_intents(
    documents: Sequence[Document],
    path: str | Path,
    *,
    output_type: OutputType = "single-file",
    fmt: OutputFormat = "yaml",
) -> list[Path]:
    """Write the documents to one file, or to a directory with one `<namespace>.<name>.<fmt>` file per
    client (a JSON file there holds the single document, not an array). Returns the files written."""
    target = Path(path)
    if output_type == "single-file":
        if target.parent != Path(""):
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(documents, fmt))
        return [target]
    if output_type == "dir":
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for doc in documents:
            file = target / _file_name(doc, fmt)
            file.write_text(render_yaml([doc]) if fmt == "yaml" else json.dumps(doc, indent=2) + "\n")
            written.append(file)
        return written
    raise ValueError(f"output type must be single-file or dir, not {output_type!r}")
