"""Memory of the mapper's edge store: RSS grown by merging N distinct edges (each reported by two nodes
with their own pod, twice), the way the server merges them (serialized batches, known-edge cache).

    .venv/bin/python bench/mapper_memory.py [--edges 500000] [--form columns|edges]

One process per run, RSS from /proc/self/statm after gc.collect(), the batches built before the baseline.
The deploy manifest's memory limit is sized from this (deploy/base/mapper.yaml).
"""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mapper.store import EdgeStore  # noqa: E402
from mapper_ingest import stream_batches  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=500_000)
    ap.add_argument("--form", choices=("columns", "edges"), default="columns")
    args = ap.parse_args()
    streams = 10
    batches = [stream_batches(s, streams, args.edges, 2, 1000, args.form) for s in range(streams)]
    gc.collect()
    before = rss_mib()
    store = EdgeStore()
    for _ in range(2):
        for k, raws in enumerate(batches):
            for raw in raws:
                store.merge(None, f"node-{k}", raw=raw)
    gc.collect()
    grown = rss_mib() - before
    print(f"{len(store):,} edges ({args.form}): +{grown:.0f} MiB RSS, {grown * 2**20 / len(store):.0f} B per edge")


if __name__ == "__main__":
    main()
