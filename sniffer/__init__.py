"""netmapper sniffer: the node agent.

Data flows one way: kernel probes (connect_probe, dns_probe over bpf/*.c) produce raw observations
(records) -> the resolver turns addresses into identities using a ClusterIndex fed by a snapshot file
or a live Kubernetes watch -> edges are batched -> reporter streams them to the mapper over gRPC.
Nothing here imports `mapper`.
"""
