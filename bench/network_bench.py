"""Allowlist mode's cost: a run of ``print(1)`` without network and with an allowlist, cold and
pooled. No traffic leaves the machine (the program makes no connection; the allowlist names only
a ``.invalid`` host).

    .venv/bin/python bench/network_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from cellblock.network import Egress
from cellblock.sandbox import Limits, Pool, RunRequest
from cellblock.sandbox.docker import DockerBackend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    backend = DockerBackend()
    modes = {
        "none": Limits(runtime="runc"),
        "allowlist": Limits(
            runtime="runc", network="allowlist", egress=Egress(allow=("bench.invalid",))
        ),
    }
    print(f"{'mode':<10} {'cold p50':>9} {'pooled p50':>11}  (s, {args.runs} runs each)")
    with Pool(backend, size=1) as pool:
        for name, limits in modes.items():
            cold, pooled = [], []
            for _ in range(args.runs):
                t = time.monotonic()
                assert backend.run(RunRequest("print(1)", limits=limits)).ok
                cold.append(time.monotonic() - t)
            for _ in range(args.runs):
                pool.warm(limits, wait=True, timeout_s=120)
                t = time.monotonic()
                result = pool.run(RunRequest("print(1)", limits=limits))
                pooled.append(time.monotonic() - t)
                assert result.ok and result.pooled
            print(f"{name:<10} {statistics.median(cold):>9.3f} {statistics.median(pooled):>11.3f}")


if __name__ == "__main__":
    main()
