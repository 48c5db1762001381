"""`netmapper demo`: run the whole pipeline on this machine against a simulated cluster."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="simulate a cluster with network namespaces and map it (root)")
    p.add_argument("-o", "--output", type=Path, default=Path("out/demo-intents.yaml"),
                   help="where to write the ClientIntents (default out/demo-intents.yaml)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from netmapper.demo.run import main

    return main(args.output)
