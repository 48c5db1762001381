"""Snapshot feed: a cluster described by a file, as `kubectl get ... -A -o yaml` prints it.

Accepts a `kind: List` (or any `*List`) document, multi-document YAML, or a mix. Objects of kinds the
index does not use are ignored. A bad file is reported with the file name and the reason; nothing is
half-loaded.

The sniffer reads its snapshot in a child process (`SnapshotFeed(..., node=...)`): parsing a 10k-pod
file makes hundreds of MiB of short-lived Python objects, and the interpreter keeps most of that heap
mapped afterwards (the few objects the index keeps pin the arenas). The child parses and checks the
file and streams back one compact JSON object per line, pods of other nodes slimmed to what the
resolver needs; the parent indexes each line as it arrives (the index keeps a compact record of
each, kube_records.py), so it never holds the whole cluster as dicts.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sniffer.cluster import ClusterIndex
from sniffer.child_process import die_with_parent

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
    docs: list[Any] | None = None
    if text.lstrip()[:1] in ("{", "["):  # `kubectl get -o json`: JSON is YAML, but json parses it 50x faster
        try:
            docs = [json.loads(text)]
        except ValueError:
            docs = None  # not plain JSON after all: YAML says what is wrong
    if docs is None:
        import yaml  # only the child that parses needs it, not the sniffer that indexes its output

        try:
            # libyaml's parser when PyYAML has it
            docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except yaml.YAMLError as e:
            raise SnapshotError(f"{path}: not valid YAML: {e}") from e
    objs: list[Mapping[str, Any]] = []
    for n, doc in enumerate(docs):
        objs.extend(_objects(doc, f"{path} document {n}"))
    return objs


def _json_default(value: Any) -> str:
    if isinstance(value, datetime.datetime | datetime.date):  # YAML timestamps
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def shaped_for_node(objs: list[Mapping[str, Any]], node: str) -> list[Mapping[str, Any]]:
    """What the live feed would keep: pods of other nodes slimmed, owners (ReplicaSets, Deployments,
    ...) metadata only, everything else as it is."""
    from sniffer.kube_shape import node_of, slim_pod  # only the child needs it
    from sniffer.owners import OWNER_KINDS

    out: list[Mapping[str, Any]] = []
    for o in objs:
        kind = o.get("kind")
        if kind == "Pod" and node_of(o) != node:
            o = slim_pod(dict(o))
        elif kind in OWNER_KINDS:
            meta = {k: v for k, v in (o.get("metadata") or {}).items() if k != "managedFields"}
            o = {"apiVersion": o.get("apiVersion"), "kind": kind, "metadata": meta}
        out.append(o)
    return out


def load_snapshot_in_child(path: Path, node: str, index: ClusterIndex, *, timeout: float = 600.0) -> None:
    """read_snapshot + shaped_for_node in a child process, indexed line by line as it streams in.

    The child checks the whole file before it writes anything, so a bad file loads nothing.
    """
    with subprocess.Popen([sys.executable, "-m", "sniffer.snapshot_feed", str(path), node, str(os.getpid())],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        if first:
            # Each line's dict lives only until the index has made its record (kube_records.py).
            index.load((json.loads(line) for line in _chain_first(first, proc.stdout)), at=0.0)
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        if proc.wait(timeout=timeout) != 0:
            raise SnapshotError(err[-1] if err else f"{path}: snapshot reader exited with {proc.returncode}")


def _chain_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


@dataclass
class SnapshotFeed:
    """IdentityFeed over a snapshot file. Objects are valid from the beginning of time.

    node: when set, the file is read in a child process and pods of other nodes are slimmed.
    """

    path: Path
    node: str | None = None
    _loaded: bool = field(default=False, init=False)

    def start(self, index: ClusterIndex) -> None:
        if self.node is None:
            index.load(read_snapshot(self.path), at=0.0)
        else:
            load_snapshot_in_child(self.path, self.node, index)
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




def _child_main(argv: list[str]) -> int:
    """`python -m sniffer.snapshot_feed FILE NODE`: the shaped objects on stdout, one JSON per line."""
    try:
        objs = shaped_for_node(read_snapshot(Path(argv[0])), argv[1])
    except SnapshotError as e:
        print(" ".join(str(e).split()), file=sys.stderr)  # one line: the parent reports the last one
        return 2
    out = sys.stdout
    for o in objs:
        out.write(json.dumps(o, separators=(",", ":"), default=_json_default))
        out.write("\n")
    return 0


if __name__ == "__main__":
    die_with_parent(int(sys.argv[3]))
    sys.exit(_child_main(sys.argv[1:3]))
