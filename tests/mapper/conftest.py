"""Fixtures of the mapper tests."""
from __future__ import annotations

import pytest

from mapper.crd_schema import ClientIntentsValidator


@pytest.fixture(scope="session")
def crd_validator() -> ClientIntentsValidator:
    """Strict validator over the ClientIntents CRD (shared reference copy when present, else tests/data)."""
    return ClientIntentsValidator()
