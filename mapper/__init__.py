"""netmapper mapper: the central service that sniffers report to.

Role: receive "A calls B" edges from every node, merge them into one deduplicated, durable edge set
and answer queries. Turning edges into ClientIntents is the CLI's job (netmapper.intents).

Data flow (modules import downwards only; nothing here imports `sniffer` or the CLI):

    sniffer --gRPC ReportEdges--> server.py  (transport: acks, health, logging)
                                     |
                                     v
                                  store.py   (EdgeStore: idempotent merge keyed by netmapper_api.keys,
                                               first/last seen, counts, nodes; optional sqlite file)
          ListEdges / ResetEdges <---+
"""
