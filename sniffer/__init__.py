"""netmapper sniffer: the node agent.

Data flows one way: kernel probes (connect_probe, dns_probe over bpf/*.c) produce raw observations
(records) -> the resolver turns addresses into identities using a ClusterIndex (cluster, with
ip_timeline, owners, pods, selectors) fed by a snapshot file (snapshot_feed) or a live Kubernetes
watch (kube_feed, with kube_stream, kube_slices, kube_discovery, kube_shape, kube_owners) -> DNS
replies name the servers (dns_watch -> dns_parse, dns_trust -> dns_names) -> edges are aggregated
(edges) -> the reporter streams them to the mapper over gRPC. agent runs the drain loop.
Imports only the contract (netmapper_api), never `mapper` or the CLI.
"""
