"""The test cluster's DNS (no CoreDNS package exists here): answers Service names from the API server, and
names "outside" the cluster from the ConfigMap kube-system/cluster-dns-hosts (lines "IP NAME").

    <svc>.<ns>.svc.cluster.local            A: the ClusterIP, or the ready endpoints of a headless Service
    <hostname>.<svc>.<ns>.svc.cluster.local A: that endpoint (StatefulSet pods behind their headless Service)
    names in cluster-dns-hosts               A: the listed address
Anything else is NXDOMAIN; a known name asked for another type gets an empty answer. Runs in the workload image
with a service account allowed to list services, endpoints and that ConfigMap (scripts/cluster/dns-addon.yaml).
"""
from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

log = logging.getLogger("cluster-dns")
SA = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The Service's address from the environment: this pod's own resolver is the node's (dnsPolicy: Default),
# which knows no cluster names.
API = "https://{}:{}".format(os.environ.get("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                             os.environ.get("KUBERNETES_SERVICE_PORT", "443"))
DOMAIN = "cluster.local"
HOSTS_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/cluster-dns-hosts"
REFRESH_SECONDS = 1.0


def _get(path: str, ctx: ssl.SSLContext, token: str) -> Any:
    req = urllib.request.Request(API + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        return json.load(resp)


def build_records(services: Any, endpoints: Any, hosts: Any) -> dict[str, list[str]]:
    """name (lower case, with trailing dot) -> IPv4 addresses."""
    records: dict[str, list[str]] = {}
    ready: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for ep in endpoints.get("items", []):
        key = (ep["metadata"]["namespace"], ep["metadata"]["name"])
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                ready.setdefault(key, []).append((addr["ip"], addr.get("hostname", "")))
    for svc in services.get("items", []):
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        fqdn = f"{name}.{ns}.svc.{DOMAIN}."
        cluster_ip = svc["spec"].get("clusterIP", "")
        if cluster_ip and cluster_ip != "None":
            records[fqdn] = [cluster_ip]
            continue
        for ip, hostname in ready.get((ns, name), []):
            records.setdefault(fqdn, []).append(ip)
            if hostname:
                records.setdefault(f"{hostname}.{fqdn}", []).append(ip)
    if hosts:
        for line in (hosts.get("data") or {}).get("hosts", "").splitlines():
            parts = line.split()
            if len(parts) >= 2 and not parts[0].startswith("#"):
                for name in parts[1:]:
                    records.setdefault(name.lower().rstrip(".") + ".", []).append(parts[0])
    return records


class ClusterResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def refresh_forever(self) -> None:
        ctx = ssl.create_default_context(cafile=str(SA / "ca.crt"))
        while True:
            try:
                token = (SA / "token").read_text()
                try:
                    hosts = _get(HOSTS_CONFIGMAP, ctx, token)
                except urllib.error.HTTPError as e:
                    if e.code != 404:
                        raise
                    hosts = None
                records = build_records(_get("/api/v1/services", ctx, token),
                                        _get("/api/v1/endpoints", ctx, token), hosts)
                with self._lock:
                    changed = records != self._records
                    self._records = records
                if changed:
                    log.info("%d names", len(records))
            except Exception:  # noqa: BLE001 - keep serving the last good answers; the cause is logged
                log.exception("refresh failed")
            time.sleep(REFRESH_SECONDS)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).lower()
        with self._lock:
            addrs = self._records.get(qname)
        if addrs is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in addrs:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=5))
        return reply


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    resolver = ClusterResolver()
    threading.Thread(target=resolver.refresh_forever, daemon=True).start()
    quiet = DNSLogger(log="error", prefix=False)  # not one line per query
    servers = [DNSServer(resolver, address="0.0.0.0", port=53, logger=quiet),
               DNSServer(resolver, address="0.0.0.0", port=53, tcp=True, logger=quiet)]
    for s in servers:
        s.start_thread()
    log.info("serving DNS for %s on :53", DOMAIN)
    while all(s.isAlive() for s in servers):
        time.sleep(1)


if __name__ == "__main__":
    main()
