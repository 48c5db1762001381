"""How long a durable mapper takes to come back after kill -9 with the most journal it lets pile up.

    .venv/bin/python bench/mapper_restart.py [--rounds 3] [--form columns|edges]

A child process opens an EdgeStore on a fresh file, merges batches as the server does (durable: each
waits for its group commit), and dies with os._exit right after the last one is acknowledged: nothing is
checkpointed at exit, so a restart replays the journal. Two cases, each at the bound that triggers a
checkpoint (mapper/store.py): a journal of MAX_NEW_EDGES new edges (the slow ones to replay), and one of
about MAX_JOURNAL_BYTES of re-reported edges. The parent times opening the store again (load + replay)
and checks that it holds every edge.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mapper.store import MAX_JOURNAL_BYTES, MAX_NEW_EDGES, EdgeStore  # noqa: E402
from mapper_ingest import stream_batches  # noqa: E402


def fill(db: str, case: str, form: str) -> None:
    """The child: merge, acknowledge, die without closing."""
    streams = 10
    edges = MAX_NEW_EDGES if case == "new" else 100_000
    batches = [stream_batches(s, streams, edges, 1, 1000, form) for s in range(streams)]
    store = EdgeStore(db, flush_interval=3600)
    seq = 0
    journaled = 0
    target = MAX_NEW_EDGES if case == "new" else int(MAX_JOURNAL_BYTES * 0.95)
    while True:
        for k, raws in enumerate(batches):
            for raw in raws:
                seq += 1
                result = store.merge(None, f"node-{k}", batch=("bench", seq), raw=raw)
                assert store.wait_durable(result)
                journaled += result.accepted if case == "new" else len(raw)
                if journaled >= target:
                    print(seq, flush=True)
                    os._exit(0)  # kill -9 as far as the store can tell: no close, no checkpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--form", choices=("columns", "edges"), default="columns")
    ap.add_argument("--fill", nargs=2, metavar=("DB", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fill:
        fill(args.fill[0], args.fill[1], args.form)
        return
    for case in ("new", "re-reported"):
        times = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as d:
                db = os.path.join(d, "edges.db")
                out = subprocess.run([sys.executable, __file__, "--form", args.form, "--fill", db, case],
                                     capture_output=True, text=True, check=True)
                batches = int(out.stdout.split()[-1])
                journal = sum(f.stat().st_size for f in Path(db + ".journal.d").iterdir())
                t = time.perf_counter()
                store = EdgeStore(db)
                times.append(time.perf_counter() - t)
                held = len(store)
                store.close()
            print(f"{case}: {batches} batches, journal {journal / 2**20:.0f} MiB, {held:,} edges held, "
                  f"restart {times[-1]:.2f} s", flush=True)
        print(f"{case} ({args.form}): restart median {statistics.median(times):.2f} s "
              f"[{min(times):.2f} - {max(times):.2f}]")


if __name__ == "__main__":
    main()
