"""Snapshot feed: a cluster described by a file, as `kubectl get ... -A -o yaml` prints it.

Accepts a `kind: List` (or any `*List`) document, multi-document YAML, or a mix. Objects of kinds the
index does not use are ignored. A bad file is reported with the file name and the reason; nothing is
half-loaded.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sniffer.cluster import ClusterIndex

log = logging.getLogger(__name__)


class SnapshotError(ValueError):
    """The snapshot file cannot be used; the message says which file and why."""


def _objects(doc: Any, where: str) -> Iterator[Mapping[str, Any]]:
    if doc is None:
        return
    if not isinstance(doc, Mapping):
        raise SnapshotError(f"{where}: expected a Kubernetes object or List, got {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List"):
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise SnapshotError(f"{where}: 'items' of a {kind} must be a list")
        item_kind = kind[: -len("List")] or None  # `kubectl get pods -o yaml` items may omit kind
        for i, item in enumerate(items):
            if isinstance(item, Mapping) and "kind" not in item and item_kind:
                item = {**item, "kind": item_kind}
            yield from _objects(item, f"{where} item {i}")
        return
    if not isinstance(kind, str) or not kind:
        raise SnapshotError(f"{where}: object without 'kind'")
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise SnapshotError(f"{where}: {kind} without metadata.name")
    yield doc


def read_snapshot(path: Path) -> list[Mapping[str, Any]]:
    """Parse and check a snapshot file completely before anything uses it."""
    try:
        text = path.read_text()
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read snapshot: {e.strerror or e}") from e
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise SnapshotError(f"{path}: not valid YAML: {e}") from e
    objs: list[Mapping[str, Any]] = []
    for n, doc in enumerate(docs):
        objs.extend(_objects(doc, f"{path} document {n}"))
    return objs


@dataclass
class SnapshotFeed:
    """IdentityFeed over a snapshot file. Objects are valid from the beginning of time."""

    path: Path
    _loaded: bool = field(default=False, init=False)

    def start(self, index: ClusterIndex) -> None:
        objs = read_snapshot(self.path)
        index.load(objs, at=0.0)
        self._loaded = True
        log.info("snapshot %s: %s", self.path, index.counts())

    def wait_synced(self, timeout: float) -> bool:
        return self._loaded

    def stop(self) -> None:
        pass


def load_index(path: Path, **index_options: Any) -> ClusterIndex:
    """Convenience for tools and tests: an index holding the snapshot at `path`."""
    index = ClusterIndex(**index_options)
    SnapshotFeed(path).start(index)
    return index


