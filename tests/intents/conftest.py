"""Fixtures of the export tests."""
from __future__ import annotations

import pytest

from netmapper.intents.crd import ClientIntentsValidator


@pytest.fixture(scope="session")
def crd_validator() -> ClientIntentsValidator:
    """Strict validator over the ClientIntents CRD (the copy shipped as package data)."""
    return ClientIntentsValidator()
