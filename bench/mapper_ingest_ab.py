"""A/B of mapper ingest between checkouts (or forms), alternating in one run: median and range of the
steady-state observations/s that bench/mapper_ingest.py prints.

    .venv/bin/python bench/mapper_ingest_ab.py --rounds 3 OLD=/path/to/old/checkout NEW=. \\
        [NEW-edges=.:--form=edges] -- --db --tls --rounds 10

Each variant is NAME=CHECKOUT[:EXTRA,ARGS]; the arguments after `--` go to every run. The old checkout
is run with its own bench and its own mapper, so a variant is the whole mapper as it was.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

_STEADY = re.compile(r"steady state: .* = +([\d,]+) obs/s .*?([\d.]+) us/obs")


def run(checkout: Path, args: list[str]) -> tuple[float, float]:
    out = subprocess.run([sys.executable, str(checkout / "bench" / "mapper_ingest.py"), *args],
                         capture_output=True, text=True, timeout=900, cwd=checkout)
    match = _STEADY.search(out.stdout)
    if match is None:
        raise SystemExit(f"{checkout}: no steady-state line in its output:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(match.group(1).replace(",", "")), float(match.group(2))


def main() -> None:
    argv = sys.argv[1:]
    common = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("variants", nargs="+", metavar="NAME=CHECKOUT[:EXTRA,ARGS]")
    opts = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    variants = []
    for spec in opts.variants:
        name, _, rest = spec.partition("=")
        checkout, _, extra = rest.partition(":")
        variants.append((name, Path(checkout).resolve(), [a for a in extra.split(",") if a]))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in variants}
    for r in range(opts.rounds):
        for name, checkout, extra in variants:
            obs, us = run(checkout, [*common, *extra])
            results[name].append((obs, us))
            print(f"round {r + 1} {name}: {obs:,.0f} obs/s, {us:.2f} us/obs", flush=True)
    print(f"\nsteady state, {opts.rounds} rounds alternating, args: {' '.join(common)}")
    for name, rows in results.items():
        obs = [o for o, _ in rows]
        us = [u for _, u in rows]
        print(f"{name:>12}: median {statistics.median(obs):,.0f} obs/s [{min(obs):,.0f} - {max(obs):,.0f}], "
              f"{statistics.median(us):.2f} us/obs mapper CPU")


if __name__ == "__main__":
    main()
