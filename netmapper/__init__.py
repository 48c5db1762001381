"""netmapper: the shared API (generated gRPC stubs in netmapper.v1), the CLI and the demo lab.

Layers import downwards only: bpf/ (C) -> sniffer -> netmapper.v1 (API) -> mapper.
The CLI and the demo sit on top and may import both sides; sniffer and mapper never import each other.
"""
