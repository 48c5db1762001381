"""The ClientIntents CRD the exports are validated against."""
from __future__ import annotations

import pytest

from pathlib import Path

from netmapper.intents import crd as crd_schema

# Where the project's reference copy of Otterize's CRD lives beside the repository (when it does).
SHARED_CRD = Path(__file__).resolve().parents[3] / "shared" / "reference" / crd_schema.CRD_FILE_NAME


def test_bundled_copy_matches_the_shared_reference() -> None:
    if not SHARED_CRD.is_file():
        pytest.skip(f"no shared reference at {SHARED_CRD}")
    assert crd_schema.BUNDLED_CRD.read_bytes() == SHARED_CRD.read_bytes()


def test_every_version_has_a_schema() -> None:
    schemas = crd_schema.load_schemas(crd_schema.BUNDLED_CRD)
    assert sorted(schemas) == [
        f"k8s.otterize.com/{v}" for v in ("v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1")
    ]
    assert schemas["k8s.otterize.com/v2beta1"]["properties"]["spec"]["required"] == ["targets", "workload"]


def test_schemas_use_no_openapi_extensions_json_schema_would_misread() -> None:
    text = crd_schema.BUNDLED_CRD.read_text()
    for extension in ("x-kubernetes-", "nullable:", "anyOf:", "oneOf:", "allOf:"):
        assert extension not in text
