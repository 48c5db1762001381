"""Version-free records of declared ClientIntents. Pure data, no I/O.

Every apiVersion of the CRD (v1alpha2, v1alpha3, v1beta1: `spec.service` + `spec.calls`; v2alpha1,
v2beta1: `spec.workload` + `spec.targets`) is read into these records, so matching never looks at a
version again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TargetType = Literal["kubernetes", "service", "internet"]


@dataclass(frozen=True, slots=True, order=True)
class ClientRef:
    """The workload a ClientIntents document speaks for. kind is "" when the document leaves it out."""

    namespace: str
    name: str
    kind: str = ""

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "namespace": self.namespace, "kind": self.kind}

    def label(self) -> str:
        return f"{self.namespace}/{self.name}" + (f" ({self.kind})" if self.kind else "")


@dataclass(frozen=True, slots=True)
class DeclaredTarget:
    """One network target of a client, as the operator reads it.

    - kubernetes: a workload `name` in `namespace` (kind "" = any kind); it also covers calls through
      the Services that select that workload.
    - service: calls through the Service `name` in `namespace`.
    - internet: calls to `domains` (a leading "*" matches any suffix, as the operator's DNS cache does),
      `ips` (addresses or CIDRs) on `ports` (empty = every port).
    `written` is the target as it appears in v2 form ({"kubernetes": {...}}), for reports; `index` its
    position in the document's targets (or calls) list.
    """

    type: TargetType
    index: int
    name: str = ""
    namespace: str = ""
    kind: str = ""
    domains: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    written: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    source: str = ""  # "file:line" of the target when read from a file


@dataclass(frozen=True, slots=True)
class DeclaredIntents:
    """One ClientIntents document. `source` says where it came from ("file:line" or "cluster")."""

    client: ClientRef
    targets: tuple[DeclaredTarget, ...]
    api_version: str
    metadata_name: str
    source: str
    path: Path | None = None
    # targets the operator enforces outside the network (sql, aws, gcp, azure): not compared, counted
    ignored_targets: int = 0


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """A document that could not be read: where (file:line:column or cluster object) and why."""

    where: str
    message: str

    def describe(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class LoadResult:
    intents: list[DeclaredIntents]
    problems: list[LoadProblem]
