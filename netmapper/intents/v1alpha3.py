"""The v1alpha3 mapping (the Otterize CLI's): spec.service {name, kind}; spec.calls [{name, kind}] for
workloads, [{name: "svc:<name>"}] for Service targets, [{type: internet, internet: {...}}] for the
outside world."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def calls(targets: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """spec.calls for v2beta1 (type, body) targets in output order."""
    calls: list[dict[str, Any]] = []
    for typ, body in targets:
        if typ == "kubernetes":
            calls.append(dict(body))
        elif typ == "service":
            calls.append({"name": f"svc:{body['name']}"})  # the Otterize CLI's v1alpha3 Service notation
        else:
            calls.append({"type": "internet", "internet": body})
    return calls
