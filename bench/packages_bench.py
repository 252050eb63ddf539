"""Packages on the hot path, measured in one invocation:

1. data image: a pooled run of ``import pandas, numpy; print(1)`` against the host's own
   ``python3 -c "import pandas, numpy"`` (a venv of the host's python3 with the same pinned
   numpy and pandas), p50 ratio; goal <= 1.0. The warm runner imports the profile's preload
   modules before the program's fork, so the program finds them loaded.
2. per-run packages: a pooled pipeline run of ``print(1)`` with and without one small cached
   pure-Python wheel (``--with tabulate``); goal: <= 30 ms added at p50.

    .venv/bin/python bench/packages_bench.py            # 20 samples per variant
    .venv/bin/python bench/packages_bench.py --quick    # 6

Before each pooled sample the pool is given time to have a warm cell (a pooled run means
one is ready), which is not timed. Results: bench/results/packages_bench.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, summary, table, verdict, write_json
from cellblock.packages import PipResolver
from cellblock.pipeline import Pipeline
from cellblock.policy import Policy, load_preset
from cellblock.sandbox import Limits, Pool, RunRequest
from cellblock.sandbox.docker import DockerBackend, connect
from cellblock.sandbox.profiles import DATA, build_profile_image

IMPORT = "import pandas, numpy; print(1)"
TABULATE = "tabulate==0.10.0"


def _host_venv(root: Path) -> Path:
    """The host's python3 in a venv with the data profile's numpy and pandas (same pins)."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    pins = [r for r in DATA.requirements if r.split("==")[0] in ("numpy", "pandas", "tzdata",
                                                                  "python-dateutil")]
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *pins], check=True
    )
    return root / "bin" / "python"


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_data_image(n: int, runtime: str) -> dict[str, Any]:
    client = connect()
    info = build_profile_image(client, DATA)
    backend = DockerBackend(client=client, image=info.tag)
    limits = Limits(runtime=runtime, timeout_s=60, memory_bytes=512 * 1024 * 1024)
    host: list[float] = []
    pooled: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cellblock-bench-") as tmp, Pool(
        backend, size=1
    ) as pool:
        python = _host_venv(Path(tmp) / "venv")
        code = "import pandas, numpy"
        subprocess.run([str(python), "-c", code], check=True)  # warm the page cache
        for _ in range(n):
            pool.warm(limits, wait=True, timeout_s=120)
            request = RunRequest(code=IMPORT, limits=limits)
            t0 = time.perf_counter()
            result = pool.run(request)
            pooled.append(time.perf_counter() - t0)
            assert result.stdout.strip() == "1", result
            host.append(_timed(lambda: subprocess.run([str(python), "-c", code], check=True)))
    h, p = summary(host), summary(pooled)
    return {"host": h, "pooled": p, "ratio_p50": round(p["p50_ms"] / h["p50_ms"], 3)}


def _policy(runtime: str) -> Policy:
    data = load_preset("standard").to_dict()
    for profile in data["profiles"].values():
        profile["runtime"] = runtime
        profile["packages"] = {"allowed": True}
    data["pool"] = {"enabled": True, "size": 1, "idle_timeout": 300}
    return Policy.from_dict(data)


def bench_per_run_packages(n: int, runtime: str) -> dict[str, Any]:
    PipResolver().resolve([TABULATE])  # cached, as the goal says
    plain: list[float] = []
    with_pkg: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cellblock-bench-") as tmp, Pipeline(
        _policy(runtime), audit_dir=Path(tmp) / "audit", use_pool=True
    ) as pipeline:
        pipeline.execute("print(1)", packages=[TABULATE])  # resolution and scan answers cached
        for _ in range(n):
            for bucket, packages in ((plain, None), (with_pkg, [TABULATE])):
                pipeline.warm()
                time.sleep(0.2)
                t0 = time.perf_counter()
                result = pipeline.execute("print(1)", packages=packages)
                bucket.append(time.perf_counter() - t0)
                assert result.execution is not None and result.execution.stdout == "1\n"
    a, b = summary(plain), summary(with_pkg)
    return {"plain": a, "with_package": b, "added_p50_ms": round(b["p50_ms"] - a["p50_ms"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--runtime", default="runc", choices=["runc", "runsc"])
    args = parser.parse_args()
    n = args.n or (6 if args.quick else 20)
    data = bench_data_image(n, args.runtime)
    per_run = bench_per_run_packages(n, args.runtime)
    print(
        table(
            ["measure", "p50 ms", "p90 ms"],
            [
                ["host python3 -c 'import pandas, numpy'", data["host"]["p50_ms"],
                 data["host"]["p90_ms"]],
                ["pooled run on data: import pandas, numpy", data["pooled"]["p50_ms"],
                 data["pooled"]["p90_ms"]],
                ["pooled pipeline run print(1)", per_run["plain"]["p50_ms"],
                 per_run["plain"]["p90_ms"]],
                ["same with --with tabulate (cached)", per_run["with_package"]["p50_ms"],
                 per_run["with_package"]["p90_ms"]],
            ],
        )
    )
    goals = [
        verdict("data image import ratio <= 1.0", data["ratio_p50"] <= 1.0,
                f"p50 ratio {data['ratio_p50']}"),
        verdict("one cached wheel adds <= 30 ms", per_run["added_p50_ms"] <= 30,
                f"{per_run['added_p50_ms']} ms at p50"),
    ]
    write_json(
        "packages_bench",
        {"machine": machine_info(), "runtime": args.runtime, "samples": n, "data_image": data,
         "per_run_packages": per_run, "goals": goals},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
