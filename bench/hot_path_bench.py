"""The hot path (issue 14): one pooled ``print(1)`` against the host's own ``python3 -c``.

    .venv/bin/python bench/hot_path_bench.py               # 80 interleaved rounds, ~1 minute
    .venv/bin/python bench/hot_path_bench.py --rounds 200 --runs 3

Goal: the pooled run's p50 at most 0.6x the host's ``/usr/bin/python3 -c 'print(1)'`` p50 in
every run (``--runs`` repeats the whole measurement, each with its own baseline). Variants run
round-robin; before every sample the pool is topped up and left to settle, so pooled samples are
real pool hits on a quiet engine (misses are counted). The runner's own view is printed too:
``inside`` is its ``duration_s`` (handover to the program's exit), the rest of the pooled time is
the runner's bookkeeping, the attach stream and the host's parsing.
Results: bench/results/hot_path_bench.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PRINT1,
    LoadSampler,
    cleanup,
    host_python,
    interleave,
    machine_info,
    percentile,
    table,
    write_json,
)
from cellblock.sandbox.docker import DockerBackend
from cellblock.sandbox.interface import Limits, RunRequest
from cellblock.sandbox.pool import Pool

BASELINE = "host /usr/bin/python3 -c"
GOAL = 0.6


class Pooled:
    def __init__(self, pool: Pool, limits: Limits) -> None:
        self.pool, self.request = pool, RunRequest(PRINT1, limits=limits)
        self.misses = 0
        self.inside: list[float] = []

    def __call__(self) -> None:
        result = self.pool.run(self.request)
        if not result.ok or result.stdout.strip() != "1":
            raise RuntimeError(f"unexpected result: {result.status} {result.stdout!r}")
        if not result.pooled:
            self.misses += 1
        self.inside.append(result.duration_s)


def one_run(backend: DockerBackend, runtimes: list[str], rounds: int) -> dict[str, Any]:
    pool = Pool(backend, size=1, workers=1, idle_timeout_s=300)
    try:
        variants: dict[str, Any] = {BASELINE: host_python("/usr/bin/python3")}
        pooled: dict[str, Pooled] = {}
        for runtime in runtimes:
            limits = Limits(runtime=runtime)
            pool.warm(limits, wait=True)
            pooled[runtime] = Pooled(pool, limits)
            variants[f"cellblock pooled ({runtime})"] = pooled[runtime]

        def settle(_name: str) -> None:
            for runtime in runtimes:
                pool.warm(Limits(runtime=runtime), wait=True)
            time.sleep(0.03)  # the previous cell's exit and removal get going first

        samples = interleave(variants, rounds, before_each=settle, progress=False)
    finally:
        pool.close()
    base = percentile(samples[BASELINE], 50)
    out: dict[str, Any] = {"baseline_p50_ms": round(base * 1000, 2), "variants": {}}
    for runtime, variant in pooled.items():
        values = samples[f"cellblock pooled ({runtime})"]
        p50 = percentile(values, 50)
        inside = percentile(variant.inside[-len(values) :], 50)
        out["variants"][runtime] = {
            "p50_ms": round(p50 * 1000, 2),
            "p90_ms": round(percentile(values, 90) * 1000, 2),
            "inside_p50_ms": round(inside * 1000, 2),
            "ratio": round(p50 / base, 3),
            "misses": variant.misses,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=80, help="interleaved rounds per run")
    parser.add_argument("--runs", type=int, default=1, help="independent runs (goal: every one)")
    parser.add_argument("--runtimes", default="runc,runsc", help="comma-separated")
    args = parser.parse_args(argv)
    backend = DockerBackend()
    runtimes = [r for r in args.runtimes.split(",") if r and r in backend.runtimes() | {"runc"}]
    sampler = LoadSampler()
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs}: {args.rounds} rounds ...", file=sys.stderr)
            runs.append(one_run(backend, runtimes, args.rounds))
    finally:
        cleanup(backend.client)
    rows = []
    for i, run in enumerate(runs, 1):
        for runtime, v in run["variants"].items():
            rows.append(
                [
                    i,
                    runtime,
                    run["baseline_p50_ms"],
                    v["p50_ms"],
                    v["p90_ms"],
                    v["inside_p50_ms"],
                    round(v["p50_ms"] - v["inside_p50_ms"], 2),
                    v["ratio"],
                    v["misses"],
                ]
            )
    print(
        table(
            [
                "run",
                "runtime",
                "host py p50 ms",
                "pooled p50 ms",
                "p90 ms",
                "inside ms",
                "rest ms",
                "x host py",
                "misses",
            ],
            rows,
        )
    )
    ratios = [run["variants"]["runc"]["ratio"] for run in runs if "runc" in run["variants"]]
    met = bool(ratios) and max(ratios) <= GOAL
    print(
        f"goal: pooled runc p50 <= {GOAL}x host python3 in every run: "
        f"{'MET' if met else 'NOT MET'} (ratios {', '.join(map(str, ratios))})"
    )
    report = {
        "bench": "hot_path_bench",
        "machine": machine_info(backend.client),
        "load": sampler.stop(),
        "rounds": args.rounds,
        "runs": runs,
        "goal": {"max_ratio": GOAL, "met": met},
    }
    write_json("hot_path_bench", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
