"""One ClientIntents document per client workload, in the apiVersion asked for (v2beta1 or v1alpha3)."""
from __future__ import annotations

from typing import Any, Final, Literal

from netmapper.intents import v1alpha3
from netmapper.intents.targets import ClientTargets, target_list
from netmapper_api.keys import EndpointId

API_GROUP: Final[str] = "k8s.otterize.com"
KIND: Final[str] = "ClientIntents"
OutputVersion = Literal["v2beta1", "v1alpha3"]
OUTPUT_VERSIONS: Final[tuple[str, ...]] = ("v2beta1", "v1alpha3")

Document = dict[str, Any]


def client_intents(client_id: EndpointId, targets: ClientTargets, version: OutputVersion, *, disambiguate: bool) -> Document:
    _, namespace, kind, name = client_id
    workload: dict[str, Any] = {"name": name}
    if kind:
        workload["kind"] = kind
    metadata = {"name": f"{name}-{(kind or 'workload').lower()}" if disambiguate else name, "namespace": namespace}
    if version == "v2beta1":
        return {
            "apiVersion": f"{API_GROUP}/v2beta1",
            "kind": KIND,
            "metadata": metadata,
            "spec": {"workload": workload, "targets": [{typ: body} for typ, body in target_list(targets)]},
        }
    return {
        "apiVersion": f"{API_GROUP}/v1alpha3",
        "kind": KIND,
        "metadata": metadata,
        "spec": {"service": workload, "calls": v1alpha3.calls(target_list(targets))},
    }
