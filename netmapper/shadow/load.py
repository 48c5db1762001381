"""Read declared ClientIntents from files (a file or a directory, recursively; multi-document YAML) or
from a cluster (every ClientIntents object, through the Kubernetes API).

A document that cannot be read is reported with its file, line and column and skipped; the other
documents of that file are still read: the file is split at its `---` document markers before parsing,
so a syntax error costs one document, not the file. Documents of other kinds (Deployments,
kustomization files) are passed over silently; `kind: List` is opened.
"""
from __future__ import annotations

import logging
import re
from dataclasses import replace
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

import yaml

from netmapper.shadow.model import DeclaredIntents, LoadProblem, LoadResult
from netmapper.shadow.parse import GROUP, KIND, DocumentError, PathElem, is_client_intents, parse_document

log = logging.getLogger(__name__)

_LOADER: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SUFFIXES: Final[tuple[str, ...]] = (".yaml", ".yml", ".json")
_DOC_START: Final[re.Pattern[str]] = re.compile(r"^---(?:[ \t]|$)")
# Preferred first: the operator's storage version, then the others it serves.
CLUSTER_VERSIONS: Final[tuple[str, ...]] = ("v2beta1", "v2alpha1", "v1beta1", "v1alpha3", "v1alpha2")


def intent_files(path: Path) -> list[Path]:
    """The YAML/JSON files under `path` (or `path` itself), sorted; hidden folders (.git) left out."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def split_documents(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, 0-based; text) of each document of a YAML stream, split at `---` lines.

    A `---` at column 0 always starts a document in YAML (it even ends a block scalar), so this split
    is what a YAML parser would do, minus stopping at the first broken document."""
    lines = text.splitlines(keepends=True)
    start = 0
    for i, line in enumerate(lines):
        if i > start and _DOC_START.match(line):
            yield start, "".join(lines[start:i])
            start = i
    if start < len(lines):
        yield start, "".join(lines[start:])


def _parse(chunk: str) -> tuple[object, yaml.Node | None]:
    """(data, node tree) of one document, with libyaml when PyYAML has it: reading thousands of
    documents is a CI job's time; ruamel.yaml (pure Python) is kept for the round-trip writer."""
    loader = _LOADER(chunk)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def _node_line(root: yaml.Node | None, path: Sequence[PathElem]) -> tuple[int, int] | None:
    """(line, column), 0-based, of the node at `path` (a mapping key's position for a key), or of its
    nearest ancestor that exists."""
    if root is None:
        return None
    best = (root.start_mark.line, root.start_mark.column)
    node = root
    for elem in path:
        if isinstance(node, yaml.MappingNode) and isinstance(elem, str):
            pair = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == elem), None)
            if pair is None:
                break
            best = (pair[0].start_mark.line, pair[0].start_mark.column)
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and elem < len(node.value):
            node = node.value[elem]
            best = (node.start_mark.line, node.start_mark.column)
        else:
            break
    return best


def _with_target_lines(declared: DeclaredIntents, root: yaml.Node | None, prefix: tuple[PathElem, ...], name: str,
                       offset: int) -> DeclaredIntents:
    """The same intents with each target's "file:line" (reports point at the line to edit)."""
    key = "targets" if declared.api_version.endswith(("v2alpha1", "v2beta1")) else "calls"
    targets = []
    for t in declared.targets:
        at = _node_line(root, (*prefix, "spec", key, t.index))
        targets.append(replace(t, source=f"{name}:{offset + at[0] + 1}") if at else t)
    return replace(declared, targets=tuple(targets))


def _documents_of(doc: object) -> Iterator[tuple[object, tuple[PathElem, ...]]]:
    """The document itself, or the items of a `kind: List`."""
    if isinstance(doc, Mapping) and doc.get("kind") == "List" and isinstance(doc.get("items"), Sequence):
        for i, item in enumerate(doc["items"]):
            yield item, ("items", i)
    else:
        yield doc, ()


def _looks_like_intents(doc: object) -> bool:
    return isinstance(doc, Mapping) and (doc.get("kind") == KIND or str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"))


def load_text(text: str, name: str, *, default_namespace: str = "") -> LoadResult:
    """Parse one YAML stream; `name` labels positions in problems."""
    intents: list[DeclaredIntents] = []
    problems: list[LoadProblem] = []
    for offset, chunk in split_documents(text):
        try:
            doc, tree = _parse(chunk)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"{name}:{offset + mark.line + 1}:{mark.column + 1}" if mark else f"{name}:{offset + 1}"
            problems.append(LoadProblem(where, f"invalid YAML: {e.problem or e.context}"))
            continue
        except yaml.YAMLError as e:
            problems.append(LoadProblem(f"{name}:{offset + 1}", f"invalid YAML: {e}"))
            continue
        if doc is None:
            continue
        for item, prefix in _documents_of(doc):
            if not _looks_like_intents(item):
                continue
            pos = _node_line(tree, prefix)
            line = offset + (pos[0] if pos else 0) + 1
            try:
                if not is_client_intents(item):
                    raise DocumentError("apiVersion must be k8s.otterize.com/<version> with kind ClientIntents",
                                        ("apiVersion",))
                assert isinstance(item, Mapping)
                declared = parse_document(item, source=f"{name}:{line}", default_namespace=default_namespace)
                intents.append(_with_target_lines(declared, tree, prefix, name, offset))
            except DocumentError as e:
                at = _node_line(tree, (*prefix, *e.path))
                where = f"{name}:{offset + at[0] + 1}:{at[1] + 1}" if at else f"{name}:{line}"
                problems.append(LoadProblem(where, f"{e}" + (f" (at {e.where()})" if e.path else "")))
    return LoadResult(intents=intents, problems=problems)


def load_paths(paths: Sequence[Path], *, default_namespace: str = "") -> LoadResult:
    """Every ClientIntents document under `paths`. Unreadable files are problems, not exceptions;
    a path that does not exist raises FileNotFoundError (the user mistyped it)."""
    intents: list[DeclaredIntents] = []
    problems: list[LoadProblem] = []
    for root in paths:
        for file in intent_files(root):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                problems.append(LoadProblem(str(file), f"cannot read: {e}"))
                continue
            result = load_text(text, str(file), default_namespace=default_namespace)
            intents.extend(replace(d, path=file) for d in result.intents)
            problems.extend(result.problems)
    return LoadResult(intents=intents, problems=problems)


def kube_api_client(kubeconfig: Path | None) -> Any:
    """A kubernetes ApiClient from a kubeconfig file, or from the pod's service account."""
    from kubernetes import client
    from kubernetes import config as kube_config  # imported late: only --from-cluster needs it

    config: Any = kube_config  # untyped library
    cfg = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg, persist_config=False)
    else:
        config.load_incluster_config(client_configuration=cfg)
    return client.ApiClient(cfg)


def load_cluster(api_client: Any) -> LoadResult:
    """Every ClientIntents object in the cluster, read in the first version the API server serves."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(api_client)
    last: ApiException | None = None
    for version in CLUSTER_VERSIONS:
        try:
            listed = cast(dict[str, Any], api.list_cluster_custom_object(GROUP, version, "clientintents"))
        except ApiException as e:
            if e.status == 404:  # version (or the CRD) not served: try the next one
                last = e
                continue
            raise
        intents: list[DeclaredIntents] = []
        problems: list[LoadProblem] = []
        items: list[dict[str, Any]] = listed.get("items", [])
        for obj in items:
            meta = obj.get("metadata") or {}
            where = f"cluster:{meta.get('namespace', '?')}/{meta.get('name', '?')}"
            obj.setdefault("apiVersion", f"{GROUP}/{version}")
            obj.setdefault("kind", KIND)
            try:
                intents.append(parse_document(obj, source=where))
            except DocumentError as e:
                problems.append(LoadProblem(where, f"{e}" + (f" (at {e.where()})" if e.path else "")))
        log.info("read %d ClientIntents (%s) from the cluster", len(intents), version)
        return LoadResult(intents=intents, problems=problems)
    raise LookupError(f"the API server serves no ClientIntents ({GROUP}): is the intents operator's CRD installed?"
                      + (f" ({last.reason})" if last else ""))
