"""netmapper_api: the contract between the sniffer, the mapper and the CLI.

What both ends of the gRPC API must agree on, and nothing else:
- v1/: the stubs generated from proto/netmapper_api/v1 (`make proto`; proto package netmapper.v1);
- limits: service name and message size limits;
- endpoints: the domain records of one side of an edge (workload, Service, kinds);
- loss: where observations were lost (LossSource, the proto enum's values);
- addresses: the one address normaliser (IPv4-mapped IPv6 -> IPv4);
- keys: which reported edges are the same edge (EdgeKey) and protobuf <-> identity translation;
- convert: domain records -> protobuf messages.

Imports neither `sniffer`, `mapper` nor the CLI (`netmapper`); import-linter checks it.
"""
