"""Validate ClientIntents documents against the openAPIV3Schema of their apiVersion in the CRD.

The CRD (Otterize's intents-operator k8s.otterize.com_clientintents.yaml) ships as package data
(netmapper/intents/data/); tests check it against the shared reference copy. Its schemas use
only the subset of OpenAPI v3 that JSON Schema draft 7 reads the same way (type, properties, items,
required, enum; no x-kubernetes-* extensions, no nullable), so jsonschema validates them directly.

Strict mode (default) also rejects fields the schema does not declare, as `kubectl apply
--validate=strict` does; the API server would otherwise prune them silently, so a typo in a target
would vanish from the applied policy. `metadata` stays open (the CRD declares it as a bare object).

jsonschema is imported only when validation is used.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

if TYPE_CHECKING:
    import jsonschema

CRD_FILE_NAME: Final[str] = "k8s.otterize.com_clientintents.yaml"
BUNDLED_CRD: Final[Path] = Path(__file__).with_name("data") / CRD_FILE_NAME


def load_schemas(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """apiVersion ("k8s.otterize.com/v2beta1", ...) -> openAPIV3Schema, from the CRD file."""
    crd_path = path or BUNDLED_CRD
    docs = [d for d in yaml.safe_load_all(crd_path.read_text()) if d]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise ValueError(f"{crd_path}: expected one CustomResourceDefinition, found {len(crds)}")
    spec = crds[0]["spec"]
    group = spec["group"]
    return {f"{group}/{v['name']}": v["schema"]["openAPIV3Schema"] for v in spec["versions"]}


def _closed(schema: Any) -> Any:
    """Copy of `schema` where every object that declares properties refuses undeclared ones."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


class ClientIntentsValidator:
    """Validates documents against the CRD schema of each one's apiVersion."""

    def __init__(self, crd_path: Path | None = None, *, strict: bool = True) -> None:
        import jsonschema  # noqa: PLC0415 - only needed when validating

        self.schemas = load_schemas(crd_path)
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for api_version, schema in self.schemas.items():
            # The schema's own "properties.metadata" is a bare object; closing it is a no-op.
            effective = _closed(copy.deepcopy(schema)) if strict else schema
            jsonschema.Draft7Validator.check_schema(effective)
            self._validators[api_version] = jsonschema.Draft7Validator(effective)

    @property
    def versions(self) -> list[str]:
        return sorted(self.schemas)

    def errors(self, document: dict[str, Any]) -> list[str]:
        """Human-readable schema violations of one document; [] when it is valid."""
        if document.get("kind") != "ClientIntents":
            return [f"kind is {document.get('kind')!r}, not 'ClientIntents'"]
        validator = self._validators.get(str(document.get("apiVersion")))
        if validator is None:
            return [f"apiVersion {document.get('apiVersion')!r} is not in the CRD ({', '.join(self.versions)})"]
        meta = document.get("metadata")
        problems = []
        if not isinstance(meta, dict) or not meta.get("name") or not meta.get("namespace"):
            problems.append("metadata.name and metadata.namespace are required")
        for err in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in err.absolute_path) or "<document>"
            problems.append(f"{where}: {err.message}")
        return problems

    def validate_all(self, documents: Iterable[dict[str, Any]]) -> list[str]:
        """Violations of all documents, each prefixed with namespace/name."""
        out: list[str] = []
        for doc in documents:
            meta = doc.get("metadata") or {}
            label = f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
            out.extend(f"{label}: {problem}" for problem in self.errors(doc))
        return out
