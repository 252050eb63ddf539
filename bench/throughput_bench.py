"""Sustained single-use throughput: callers sharing one cellblock Pool against the raw engine
ceiling (create + attach + start + wait + remove as fast as possible, same hardening, same image,
same number of concurrent callers), measured in one invocation.

    .venv/bin/python bench/throughput_bench.py                 # 60 s per variant and concurrency
    .venv/bin/python bench/throughput_bench.py --quick         # under a minute
    .venv/bin/python bench/throughput_bench.py --duration 30

For each concurrency level the two variants alternate in slices (default 10 s, 1 s with
--quick) until each has run ``--duration`` seconds. Every run is ``print(1)`` in a fresh
container; a pooled run that finds the pool empty degrades to a cold start, which counts too.
Pool runs are counted net of the pool's inventory change over the slice (cells made ready while
the other variant ran are not counted as free work). Results: bench/results/throughput_bench.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PRINT1,
    LoadSampler,
    RawOneShot,
    cleanup,
    machine_info,
    table,
    verdict,
    write_json,
)
from cellblock.sandbox.docker import DockerBackend
from cellblock.sandbox.interface import Limits, RunRequest
from cellblock.sandbox.pool import Pool


def run_slice(fn: Callable[[], Any], callers: int, seconds: float) -> dict[str, Any]:
    """``callers`` threads call ``fn`` in a loop for ``seconds``; count what completed."""
    counts = [0] * callers
    errors: list[str] = []
    finished = [0.0] * callers
    start = time.monotonic()
    end = start + seconds

    def worker(i: int) -> None:
        while time.monotonic() < end:
            try:
                fn()
                counts[i] += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
        finished[i] = time.monotonic()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"runs": sum(counts), "elapsed": max(finished) - start, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per variant; under a minute")
    parser.add_argument("--duration", type=float, help="seconds per variant and concurrency")
    parser.add_argument("--slice", type=float, help="seconds per alternation slice")
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated caller counts")
    args = parser.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 60.0)
    slice_s = args.slice or (1.0 if args.quick else 10.0)
    levels = [int(x) for x in args.concurrency.split(",")]

    backend = DockerBackend()
    client = backend.client
    machine = machine_info(client)
    limits = Limits()
    request = RunRequest(PRINT1, limits=limits)
    report: dict[str, Any] = {
        "bench": "throughput_bench",
        "quick": args.quick,
        "machine": machine,
        "duration_s_per_variant": duration,
        "slice_s": slice_s,
        "limits": dataclasses.asdict(limits),
    }
    rows, levels_out, goals = [], {}, []
    sampler = LoadSampler()
    pool: Pool | None = None
    try:
        for callers in levels:
            # as many background fillers as callers, so the pool drives the engine at the same
            # concurrency as the raw ceiling does
            pool = Pool(backend, size=max(2, callers), workers=callers, idle_timeout_s=300)
            pool.warm(limits, wait=True)
            raw = RawOneShot(backend, limits)

            def pooled(pool: Pool = pool) -> None:
                result = pool.run(request)
                if not result.ok or result.stdout.strip() != "1":
                    raise RuntimeError(f"{result.status} {result.stdout!r} {result.error}")

            acc = {
                "pool": {
                    "runs": 0,
                    "net_runs": 0,
                    "elapsed": 0.0,
                    "errors": [],
                    "hits": 0,
                    "misses": 0,
                },
                "raw": {"runs": 0, "net_runs": 0, "elapsed": 0.0, "errors": []},
            }
            slices = max(1, math.ceil(duration / slice_s))
            print(
                f"{callers} caller(s): {slices} slices of {slice_s:g} s per variant ...",
                file=sys.stderr,
                flush=True,
            )
            for n in range(slices):
                order = ["pool", "raw"] if n % 2 == 0 else ["raw", "pool"]
                for name in order:
                    if name == "pool":
                        before = pool.stats()
                        out = run_slice(pooled, callers, slice_s)
                        after = pool.stats()
                        net = out["runs"] - (before.ready - after.ready)
                        acc["pool"]["hits"] += after.hits - before.hits
                        acc["pool"]["misses"] += after.misses - before.misses
                    else:
                        out = run_slice(raw, callers, slice_s)
                        net = out["runs"]
                    acc[name]["runs"] += out["runs"]
                    acc[name]["net_runs"] += net
                    acc[name]["elapsed"] += out["elapsed"]
                    acc[name]["errors"] += out["errors"]
            pool.close()
            pool = None
            level: dict[str, Any] = {}
            for name, a in acc.items():
                a["per_s"] = round(a["net_runs"] / a["elapsed"], 2) if a["elapsed"] else 0.0
                a["gross_per_s"] = round(a["runs"] / a["elapsed"], 2) if a["elapsed"] else 0.0
                a["error_count"] = len(a["errors"])
                a["errors"] = sorted(set(a["errors"]))[:5]
                level[name] = a
            level["ratio"] = round(level["pool"]["per_s"] / level["raw"]["per_s"], 3)
            levels_out[callers] = level
            rows.append(
                [
                    callers,
                    level["pool"]["per_s"],
                    level["pool"]["gross_per_s"],
                    f"{level['pool']['hits']}/{level['pool']['misses']}",
                    level["raw"]["per_s"],
                    level["ratio"],
                    level["pool"]["error_count"] + level["raw"]["error_count"],
                ]
            )
    finally:
        if pool is not None:
            pool.close()
        load = sampler.stop()
        report["containers_force_removed_at_exit"] = cleanup(client)
    print(
        f"\nsustained print(1) throughput, runs/s ({duration:g} s per cell; "
        f"{machine['cpu_model']}, {machine['cores']} cores; load avg during run "
        f"mean {load['mean']}, max {load['max']})"
    )
    print(
        table(
            [
                "callers",
                "pool net/s",
                "pool gross/s",
                "hits/misses",
                "raw ceiling/s",
                "pool/raw",
                "errors",
            ],
            rows,
        )
    )
    best_raw = max(lv["raw"]["per_s"] for lv in levels_out.values())
    best_pool = max(lv["pool"]["per_s"] for lv in levels_out.values())
    for callers, lv in levels_out.items():
        goals.append(
            verdict(
                f"throughput with {callers} caller(s) >= 80% of the raw ceiling at {callers}",
                lv["ratio"] >= 0.8,
                f"{lv['pool']['per_s']:.2f}/s vs {lv['raw']['per_s']:.2f}/s = {lv['ratio']:.0%}",
            )
        )
    goals.append(
        verdict(
            "best pool throughput >= 80% of the best raw ceiling",
            best_pool >= 0.8 * best_raw,
            f"{best_pool:.2f}/s vs {best_raw:.2f}/s = {best_pool / best_raw:.0%}",
        )
    )
    report.update({"levels": levels_out, "goals": goals, "load_during_run": load})
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    write_json("throughput_bench", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
