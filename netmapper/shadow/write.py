"""`netmapper diff --write DIR`: bring a directory of ClientIntents files up to date in place.

Each uncovered call's target (as export names it) is appended to the targets (or calls) of the document
that declares its client; a client no document declares gets a new file `<workload>.<namespace>.yaml`.
With prune, unused targets are removed. The result is meant to be a reviewable Git diff:
- documents that do not change are copied byte for byte (files are split at `---` and only the changed
  documents are re-emitted);
- changed documents go through ruamel.yaml's round-trip mode: comments, key order, quoting, flow/block
  style and the document's own indentation stay as they were;
- files without changes are not rewritten at all, and a second run finds nothing to do.
"""
from __future__ import annotations

import io
import json
import re
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from netmapper.intents.export import ExportOptions
from netmapper.intents.yaml_writer import render_yaml
from netmapper.shadow.diff import Entry, diff
from netmapper.shadow.load import intent_files, load_text, split_documents
from netmapper.shadow.model import ClientRef, DeclaredIntents
from netmapper.shadow.parse import is_client_intents
from netmapper.shadow.report import intents_snippet
from netmapper_api.v1 import edge_pb2

log = logging.getLogger(__name__)


@dataclass
class _Doc:
    """One document of a file: its original text, and when it is ClientIntents, its parsed forms."""

    text: str
    declared: DeclaredIntents | None = None
    tree: Any = None
    indent: tuple[int, int, int] = (2, 2, 0)  # ruamel's (mapping, sequence, offset), read off the text
    changed: bool = False


@dataclass
class _File:
    path: Path
    docs: list[_Doc] = field(default_factory=list)


@dataclass(frozen=True)
class WriteResult:
    added: list[Entry]  # targets added (client, target)
    pruned: list[Entry]  # targets removed
    files_changed: list[Path]
    files_created: list[Path]
    not_written: list[str]  # what could not be expressed in the document's version


def _read_dir(root: Path) -> list[_File]:
    files = []
    for path in intent_files(root):
        text = path.read_text(encoding="utf-8")
        f = _File(path)
        for offset, chunk in split_documents(text):
            doc = _Doc(chunk)
            # Read fast (libyaml); the round-trip tree is built only for documents that change.
            found = load_text(chunk, f"{path}:{offset + 1}").intents
            if len(found) == 1:
                doc.declared = replace(found[0], source=f"{path}:{offset + 1}")
            f.docs.append(doc)
        files.append(f)
    return files


def _tree(doc: _Doc) -> Any:
    """The document's round-trip tree (comments and layout attached), or None when it is not one
    ClientIntents mapping that can be edited (a `kind: List`, say)."""
    if doc.tree is None:
        try:
            # Blank lines at the end would stay attached to the last target, above one appended after it.
            tree = _yaml().load(doc.text.rstrip("\n") + "\n")
        except YAMLError as e:
            log.warning("left as is: %s", e)
            return None
        if not is_client_intents(tree) or not isinstance(tree.get("spec"), CommentedMap):
            return None
        doc.tree = tree
        doc.indent = guess_indent(doc.text)
    return doc.tree


def _merged_targets(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """Targets to add for one client, internet ones with the same names/addresses merged over ports."""
    out: list[dict[str, Any]] = []
    internet: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for e in entries:
        t = e.target
        if "internet" in t:
            body = t["internet"]
            key = ("domains", tuple(body["domains"])) if body.get("domains") else ("ips", tuple(body.get("ips", [])))
            merged = internet.get(key)
            if merged is None:
                merged = internet[key] = {"internet": {key[0]: list(key[1]), "ports": []}}
                out.append(merged)
            ports = merged["internet"]["ports"]
            ports.extend(p for p in body.get("ports", []) if p not in ports)
            ports.sort()
        elif t not in out:
            out.append(t)
    return out


def _export_order(target: dict[str, Any]) -> tuple[int, str]:
    """The order export writes targets in: workloads, Services, then the outside world."""
    kind = next(iter(target))
    return (("kubernetes", "service", "internet").index(kind) if kind in ("kubernetes", "service", "internet") else 3,
            json.dumps(target, sort_keys=True))


def _as_call(target: dict[str, Any], version: str) -> dict[str, Any] | None:
    """A v2 target in the `calls` notation of v1alpha2/v1alpha3/v1beta1; None if that version has none."""
    if "kubernetes" in target:
        body = target["kubernetes"]
        if version.endswith("v1alpha2"):
            return {"name": body["name"]}
        return {"name": body["name"], **({"kind": body["kind"]} if body.get("kind") else {})}
    if "service" in target:
        return {"name": f"svc:{target['service']['name']}"}
    if "internet" in target and not version.endswith("v1alpha2"):
        return {"type": "internet", "internet": dict(target["internet"])}
    return None


def _block_seq(seq: CommentedSeq) -> None:
    if not seq:
        seq.fa.set_block_style()  # `targets: []` would otherwise grow as a flow sequence


def _to_commented(value: Any) -> Any:
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _to_commented(v)
        return m
    if isinstance(value, list):
        s = CommentedSeq(_to_commented(v) for v in value)
        if all(not isinstance(v, (dict, list)) for v in value):
            s.fa.set_flow_style()  # ports: [443], as people write short scalar lists
        return s
    return value


_KEY_LINE = re.compile(r"^( *)(?:- +)?[^#\s][^:#]*:\s*(?:#.*)?$")  # "key:" opening a nested block


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as ruamel.yaml's indent() takes them, from the first
    nested mapping and the first block sequence under a key in `text`; (2, 2, 0) when there are none."""
    lines = [ln.rstrip("\n") for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping: int | None = None
    seq: tuple[int, int] | None = None  # (sequence indent, offset)
    for prev, line in zip(lines, lines[1:]):
        m = _KEY_LINE.match(prev)
        if m is None:
            continue
        # the key's column: after "- " when the key line is itself a sequence item
        key_col = len(prev) - len(prev.lstrip(" -")) if prev.lstrip().startswith("- ") else len(m.group(1))
        col = len(line) - len(line.lstrip(" "))
        stripped = line.lstrip(" ")
        if stripped.startswith("- "):
            content = col + 1 + len(stripped[1:]) - len(stripped[1:].lstrip(" "))
            if seq is None and col >= key_col:
                seq = (content - key_col, col - key_col)
        elif mapping is None and col > key_col:
            mapping = col - key_col
        if mapping is not None and seq is not None:
            break
    m_ind = mapping or 2
    sequence, offset = seq if seq is not None else (m_ind, 0)
    return m_ind, max(sequence, offset + 2), offset


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    return yaml


def _emit(doc: _Doc) -> str:
    yaml = _yaml()
    mapping, sequence, offset = doc.indent
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.explicit_start = doc.text.lstrip().startswith("---")
    buf = io.StringIO()
    yaml.dump(doc.tree, buf)
    out = buf.getvalue()
    # ruamel drops blank lines before the first token and after the last one: put the original ones back.
    lead = doc.text[: len(doc.text) - len(doc.text.lstrip("\n"))]
    trail = doc.text[len(doc.text.rstrip("\n")) + 1:]
    return lead + out + trail


def new_file_name(client: ClientRef) -> str:
    stem = f"{client.name}.{client.namespace}".replace("/", "_").replace("\\", "_")
    return ("_" + stem if stem.startswith(".") else stem) + ".yaml"


def write_directory(root: Path, edges: Sequence[edge_pb2.Edge], *, prune: bool = False, since_ns: int = 0,
                    options: ExportOptions | None = None) -> WriteResult:
    """Update the ClientIntents files under `root` so that they cover `edges` (and, with prune, declare
    nothing unused). Returns what was done; files are written only when they change."""
    root.mkdir(parents=True, exist_ok=True)
    files = _read_dir(root)
    docs = [(f, d) for f in files for d in f.docs if d.declared is not None]
    declared = [replace(d.declared, path=f.path) for f, d in docs if d.declared is not None]
    by_identity = {id(dec): doc for dec, (_, doc) in zip(declared, docs)}
    result = diff(edges, declared, since_ns=since_ns, options=options)

    added: list[Entry] = []
    pruned: list[Entry] = []
    not_written: list[str] = []
    # Uncovered targets go to the first document that declares the client (the operator allows one).
    pending: dict[ClientRef, list[Entry]] = {}
    for entry in result.uncovered:
        pending.setdefault(entry.client, []).append(entry)
    created: list[Path] = []
    for client, entries in pending.items():
        owner = next((dec for dec in declared if dec.client.namespace == client.namespace
                      and dec.client.name == client.name and (not dec.client.kind or dec.client.kind == client.kind)),
                     None)
        targets = sorted(_merged_targets(entries), key=_export_order)
        if owner is None:
            path = root / new_file_name(client)
            text = intents_snippet(client, targets)
            if path.exists():
                existing = path.read_text(encoding="utf-8")
                text = existing + ("" if existing.endswith("\n") else "\n") + "---\n" + text
            path.write_text(text, encoding="utf-8")
            created.append(path)
            added.extend(entries)
            continue
        doc = by_identity[id(owner)]
        tree = _tree(doc)
        if tree is None:
            not_written.append(f"{owner.source}: cannot edit this document (not a single ClientIntents)")
            continue
        spec = tree["spec"]
        v2 = "targets" in spec and "workload" in spec
        seq = spec["targets"] if v2 else spec["calls"]
        _block_seq(seq)
        for t in targets:
            item = t if v2 else _as_call(t, owner.api_version)
            if item is None:
                not_written.append(f"{owner.source}: {owner.api_version} cannot express {t}")
                continue
            seq.append(_to_commented(item))
            doc.changed = True
        added.extend(entries)
    if prune:
        removals: dict[int, list[Entry]] = {}
        for entry in result.unused:
            if entry.declared is not None and entry.declared_target is not None:
                removals.setdefault(id(entry.declared), []).append(entry)
        for dec in declared:
            stale = removals.get(id(dec))
            if not stale:
                continue
            doc = by_identity[id(dec)]
            tree = _tree(doc)
            if tree is None:
                not_written.append(f"{dec.source}: cannot edit this document (not a single ClientIntents)")
                continue
            spec = tree["spec"]
            seq = spec["targets"] if "targets" in spec and "workload" in spec else spec["calls"]
            for index in sorted((e.declared_target.index for e in stale if e.declared_target), reverse=True):
                del seq[index]
            pruned.extend(stale)
            doc.changed = True
    changed: list[Path] = []
    for f in files:
        if not any(d.changed for d in f.docs):
            continue
        f.path.write_text("".join(_emit(d) if d.changed else d.text for d in f.docs), encoding="utf-8")
        changed.append(f.path)
    return WriteResult(added=added, pruned=pruned, files_changed=changed, files_created=created,
                       not_written=not_written)


__all__ = ["WriteResult", "new_file_name", "render_yaml", "write_directory"]
