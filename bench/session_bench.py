"""A step in a warm session against a pooled one-shot run of the same code, in one invocation.

    .venv/bin/python bench/session_bench.py [--rounds N] [--runtime runc|runsc]

Both go through the same Pipeline (assess, decide, record): the one-shot run takes a warm cell
from the pool (topped up and waited for before each sample, so every sample is a pool hit); the
session runs the code as a step in its persistent interpreter. Samples alternate. Prints p50 and
p90 and the ratio session / pooled; results in bench/results/session_bench.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_info, percentile, write_json
from cellblock.pipeline import Pipeline

CODE = "import statistics\nprint(statistics.mean([1, 2, 3]))\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runtime", default="runc", choices=["runc", "runsc"])
    args = parser.parse_args()
    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "runc-open.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        text = fixture.read_text().replace("runtime: runc", f"runtime: {args.runtime}")
        policy.write_text(text + "pool:\n  enabled: true\n  size: 1\n")
        with Pipeline(str(policy), audit_dir=Path(tmp) / "audit", use_pool=True) as pipeline:
            pipeline.warm()
            pooled: list[float] = []
            stepped: list[float] = []
            with pipeline.session() as session:
                session.run(CODE)  # warm the interpreter's imports once
                for _ in range(args.rounds):
                    pipeline.warm()  # a pool hit for the one-shot sample
                    t = time.perf_counter()
                    result = pipeline.execute(CODE)
                    pooled.append(time.perf_counter() - t)
                    assert result.execution is not None and result.execution.ok
                    t = time.perf_counter()
                    step = session.run(CODE)
                    stepped.append(time.perf_counter() - t)
                    assert step.ok, step
    rows = {
        "pooled one-shot": pooled,
        "session step": stepped,
    }
    out: dict[str, object] = {"machine": machine_info(), "runtime": args.runtime, "results": {}}
    for name, values in rows.items():
        p50, p90 = percentile(values, 50), percentile(values, 90)
        out["results"][name] = {"p50_s": p50, "p90_s": p90, "n": len(values)}  # type: ignore[index]
        print(f"{name:>16}: p50 {p50 * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms  (n={len(values)})")
    ratio = percentile(stepped, 50) / percentile(pooled, 50)
    out["ratio_p50_session_over_pooled"] = ratio
    print(f"session step / pooled one-shot, p50: {ratio:.2f}x")
    write_json("session_bench", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
