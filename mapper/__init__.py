"""netmapper mapper: the central service that sniffers report to.

Role: receive "A calls B" edges from every node, merge them into one deduplicated, durable edge set,
answer queries, and turn the set into Otterize ClientIntents.

Data flow (modules import downwards only; nothing here imports `sniffer`):

    sniffer --gRPC ReportEdges--> server.py  (transport: acks, health, logging)
                                     |
                                     v
                                  store.py   (EdgeStore: idempotent merge keyed by keys.edge_key,
                                     |         first/last seen, counts, nodes; optional sqlite file)
                                     |
          ListEdges / ResetEdges <---+---> export.py (pure: edges -> ClientIntents dicts -> YAML/JSON)
                                                 |
                                           crd_schema.py (validates documents against the CRD)

keys.py is pure (no I/O): it turns a proto Edge into the identity key the store merges on and
rejects invalid edges with a reason.
"""
