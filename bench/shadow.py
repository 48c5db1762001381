"""Benchmark shadow mode: diff at scale, and what webhook signals cost the mapper's ingest.

    .venv/bin/python bench/shadow.py [--edges 100000] [--clients 500] [--rounds 3]

1. diff: --edges observed edges from --clients client workloads, against ClientIntents declaring every
   other call (half covered, half uncovered): reading the YAML, matching, rendering JSON. Median and
   spread over --rounds.
2. ingest A/B, alternating in one run: the mapper's ingest path (EdgeStore.merge of batches of 1000 new
   edges, then the observer hook) without signals, and with an UncoveredCallSignaller posting to a real
   HTTP server on 127.0.0.1 (every new edge uncovered: the worst case; its matcher and sender threads
   compete for the GIL with ingest, as they do in the mapper process).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from edge_testing import edge, workload  # noqa: E402
from mapper.store import EdgeStore  # noqa: E402
from netmapper.shadow.diff import diff  # noqa: E402
from netmapper.shadow.load import load_paths, load_text  # noqa: E402
from netmapper.shadow.report import render  # noqa: E402
from netmapper.shadow.signals import UncoveredCallSignaller  # noqa: E402
from webhook_testing import WebhookServer  # noqa: E402


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f}s (min {min(values):.3f}, max {max(values):.3f})"


def bench_diff(n_edges: int, n_clients: int, rounds: int) -> None:
    edges = [edge(workload(f"c{i % n_clients}", f"ns{i % 20}"), workload(f"s{i}", f"ns{(i * 7) % 20}"), 8000 + i % 50)
             for i in range(n_edges)]
    text = "".join(
        f"---\napiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: c{c}, namespace: ns{c % 20}}}\n"
        f"spec:\n  workload: {{name: c{c}}}\n  targets:\n"
        + "".join(f"  - kubernetes: {{name: s{i}.ns{(i * 7) % 20}}}\n" for i in range(c, n_edges, 2 * n_clients))
        for c in range(n_clients))
    load_t, diff_t, json_t = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        declared = load_text(text, "bench.yaml").intents
        t1 = time.perf_counter()
        result = diff(edges, declared)
        t2 = time.perf_counter()
        render(result, "json")
        t3 = time.perf_counter()
        load_t.append(t1 - t0)
        diff_t.append(t2 - t1)
        json_t.append(t3 - t2)
    targets = sum(len(d.targets) for d in declared)
    print(f"diff: {n_edges} edges, {n_clients} clients, {targets} declared targets "
          f"({len(result.covered)} covered, {len(result.uncovered)} uncovered, {len(result.unused)} unused)")
    print(f"  read intents  {spread(load_t)}")
    print(f"  match         {spread(diff_t)}")
    print(f"  render json   {spread(json_t)}")


def ingest_round(n: int, signals: bool, hook_url: str, intents: Path) -> tuple[float, int]:
    batches = [[edge(workload(f"c{i % 50}"), workload(f"s{r}-{i}"), 8080) for i in range(1000)]
               for r in range(n // 1000)]
    store = EdgeStore()
    signaller = (UncoveredCallSignaller(hook_url, lambda: load_paths([intents]), rate=1000.0, burst=1000).start()
                 if signals else None)
    t0 = time.perf_counter()
    for batch in batches:
        result = store.merge(batch, node="n1")
        if signaller is not None and result.new_edges:
            signaller.new_edges(result.new_edges)
    elapsed = time.perf_counter() - t0
    uncovered = 0
    if signaller is not None:
        uncovered = signaller.stop(flush_timeout=0).uncovered
    store.close()
    return n / elapsed, uncovered


def bench_ingest(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, WebhookServer().running() as hook:
        (Path(tmp) / "i.yaml").write_text("apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\n"
                                          "metadata: {name: c0, namespace: shop}\n"
                                          "spec: {workload: {name: c0}, targets: []}\n")
        plain, signalled = [], []
        for _ in range(rounds):  # A/B alternating
            plain.append(ingest_round(n, False, hook.url, Path(tmp))[0])
            rate, _ = ingest_round(n, True, hook.url, Path(tmp))
            signalled.append(rate)
        a, b = statistics.median(plain), statistics.median(signalled)
        print(f"ingest of {n} new edges per round, {rounds} rounds A/B:")
        print(f"  without signals  median {a:,.0f} edges/s (min {min(plain):,.0f}, max {max(plain):,.0f})")
        print(f"  with signals     median {b:,.0f} edges/s (min {min(signalled):,.0f}, max {max(signalled):,.0f})"
              f"  -> {100 * (a - b) / a:+.1f}% cost; {len(hook.requests)} webhook posts during the run")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    bench_diff(args.edges, args.clients, args.rounds)
    bench_ingest(20_000, max(args.rounds, 5))


if __name__ == "__main__":
    main()
