"""netmapper: the command line (cli/), the ClientIntents export (intents/) and the demo (demo/).

The top layer: it may import the sniffer, the mapper and the contract (netmapper_api); nothing
below imports it. See docs/architecture.md.
"""
