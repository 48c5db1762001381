"""The ClusterIndex's records by (kind, namespace, name), kept as nested dicts kind -> namespace -> name.

A flat dict keyed by (kind, namespace, name) holds one key tuple per object: ~2.5 MiB at 10k pods with
their Services, ReplicaSets and Deployments. Kinds and namespaces are few, so the nesting costs a few
dicts instead. Not thread-safe: the ClusterIndex calls it under its lock.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from sniffer.kube_records import Record

ObjKey = tuple[str, str, str]  # (kind, namespace, name)

# What a missing kind or namespace looks like (never mutated): a `{}` default would be a new dict per lookup.
_NO_NAMESPACES: Final[Mapping[str, Mapping[str, Record]]] = {}
_NO_NAMES: Final[Mapping[str, Record]] = {}


class ObjectTable:
    __slots__ = ("_kinds",)

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, dict[str, Record]]] = {}

    def get(self, kind: str, namespace: str, name: str) -> Record | None:
        return self._kinds.get(kind, _NO_NAMESPACES).get(namespace, _NO_NAMES).get(name)

    def put(self, rec: Record) -> None:
        self._kinds.setdefault(rec.kind, {}).setdefault(rec.namespace, {})[rec.name] = rec

    def pop(self, kind: str, namespace: str, name: str) -> Record | None:
        namespaces = self._kinds.get(kind)
        names = None if namespaces is None else namespaces.get(namespace)
        if namespaces is None or names is None:
            return None
        rec = names.pop(name, None)
        if not names:
            del namespaces[namespace]
            if not namespaces:
                del self._kinds[kind]
        return rec

    def keys(self, kind: str) -> Iterator[ObjKey]:
        for namespace, names in self._kinds.get(kind, _NO_NAMESPACES).items():
            for name in names:
                yield (kind, namespace, name)

    def in_namespace(self, kind: str, namespace: str) -> list[Record]:
        return list(self._kinds.get(kind, _NO_NAMESPACES).get(namespace, _NO_NAMES).values())

    def counts(self) -> dict[str, int]:
        return {kind: sum(len(names) for names in namespaces.values()) for kind, namespaces in self._kinds.items()}
