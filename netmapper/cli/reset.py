"""`netmapper reset`: make the mapper forget every edge."""
from __future__ import annotations

import argparse
from typing import Any

from netmapper.cli.common import add_mapper_flag, client_credentials
from netmapper.client import mapper_stub
from netmapper_api.v1 import mapper_pb2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("reset", help="forget all edges in the mapper")
    add_mapper_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with mapper_stub(args.mapper, client_credentials(args)) as stub:
        resp = stub.ResetEdges(mapper_pb2.ResetEdgesRequest(), timeout=30)
    print(f"removed {resp.removed} edges")
    return 0
