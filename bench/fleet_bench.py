"""Throughput through the fleet against a direct Pipeline on the same engine, in the same run.

    .venv/bin/python bench/fleet_bench.py                  # 60 programs x 3 rounds, 2 in flight
    .venv/bin/python bench/fleet_bench.py --quick          # 16 programs x 1 round
    .venv/bin/python bench/fleet_bench.py -n 100 --concurrency 2 --rounds 3

A local Ray cluster (a head and one worker node, loopback only, no CPUs reserved, no dashboard)
carries one cellblock node whose Pipeline has a warm pool; the direct side is a Pipeline with the
same policy, the same pool size and the same number of callers (threads). Rounds alternate the two
sides so that drift in the machine's load hits both. Every program is assessed, decided, run in a
single-use container and recorded on both sides; the fleet also records each receipt in the
dispatcher's log, and the run ends with fleet verification of every log.

Also measured: dispatch overhead, the p50 of one program at a time through ``fleet.execute`` minus
the p50 through ``pipeline.execute``, both with a warm pool.
Results: bench/results/fleet_bench.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Before Ray is imported: keep 127.0.0.1 as it is, so every Ray process talks over loopback only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from _common import machine_info, summary, table, verdict, write_json
from cellblock.audit import generate_keypair
from cellblock.fleet import NodeSpec, verify_fleet
from cellblock.pipeline import Pipeline, PipelineResult

POLICY = """\
version: 1
name: fleet-bench
assessment:
  deep: never
decisions: {{none: allow, low: allow, medium: allow, high: allow, critical: block}}
profiles:
  open: {{cpus: 1.0, memory: 256m, pids: 64, timeout: 10s, runtime: {runtime}}}
decision_profiles: {{allow: open, restrict: open, review: open}}
pool: {{enabled: true, size: {pool}}}
"""


def programs(n: int, salt: str) -> list[str]:
    # distinct programs (a cache could not help either side), each a few ms of work
    return [f"# {salt} {i}\nprint(sum(range({1000 + i})))\n" for i in range(n)]


def check(results: list[Any], codes: list[str]) -> None:
    for code, r in zip(codes, results, strict=True):
        if not isinstance(r, PipelineResult) or r.status != "ok":
            raise SystemExit(f"a benchmark program did not succeed: {r!r}"[:500])
        n = int(code.split("range(")[1].split(")")[0])
        assert r.execution is not None and r.execution.stdout == f"{sum(range(n))}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=60, help="programs per round and side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=2, help="programs in flight per side")
    ap.add_argument("--latency-samples", type=int, default=20)
    ap.add_argument("--runtime", default="runc", choices=["runc", "runsc"])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rounds, args.latency_samples = 16, 1, 8

    import ray
    from ray.cluster_utils import Cluster

    from cellblock.fleet import RayFleet

    root = Path(tempfile.mkdtemp(prefix="cbfb", dir="/tmp"))  # short: Ray's socket paths
    os.environ["RAY_TMPDIR"] = str(root)
    os.environ["CELLBLOCK_AUDIT_KEY_DIR"] = str(root / "keys")  # never the user's own keys
    policy = root / "policy.yaml"
    policy.write_text(POLICY.format(runtime=args.runtime, pool=args.concurrency))
    for name in ("dispatcher", "node", "direct"):
        generate_keypair(root / f"{name}.key", root / f"{name}.pub")
    rows = []
    throughput: dict[str, list[float]] = {"direct": [], "fleet": []}
    latency: dict[str, list[float]] = {
        "direct": [],
        "fleet": [],
        "ray_round_trip": [],
        "dispatcher_record": [],
    }
    cluster = None
    try:
        store = 80 * 1024 * 1024
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "object_store_memory": store,
                "node_ip_address": "127.0.0.1",
            },
        )
        cluster.add_node(
            num_cpus=0,
            resources={"cbbench": 1},
            object_store_memory=store,
            node_ip_address="127.0.0.1",
        )
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        spec = NodeSpec(
            "n1",
            resources={"cbbench": 0.01},
            audit_dir=str(root / "node-log"),
            signing_key=str(root / "node.key"),
        )
        direct = Pipeline(policy, audit_dir=root / "direct-log", use_pool=True)
        direct.warm()
        pool = ThreadPoolExecutor(args.concurrency)
        with RayFleet(
            [spec],
            policy=policy,
            audit_dir=root / "dispatcher-log",
            signing_key=root / "dispatcher.key",
            node_list_path=root / "nodes.json",
            max_in_flight=args.concurrency,
            use_pool=True,
        ) as fleet:
            # one untimed round each: imports, first assessments, pools filled
            warmup = programs(4, "warmup")
            check(list(pool.map(direct.execute, warmup)), warmup)
            check(fleet.map(warmup, progress=False), warmup)
            for rnd in range(args.rounds):
                for side in ("direct", "fleet") if rnd % 2 == 0 else ("fleet", "direct"):
                    codes = programs(args.n, f"{side}-{rnd}")
                    t0 = time.perf_counter()
                    if side == "direct":
                        out: list[Any] = list(pool.map(direct.execute, codes))
                    else:
                        out = fleet.map(codes, progress=False)
                    wall = time.perf_counter() - t0
                    check(out, codes)
                    throughput[side].append(args.n / wall)
                    rows.append((rnd, side, args.n, round(wall, 3), round(args.n / wall, 2)))
            # one program at a time, pools warm: what the fleet adds to a single run
            for i in range(args.latency_samples):
                for side in ("direct", "fleet"):
                    code = programs(1, f"latency-{side}-{i}")[0]
                    t0 = time.perf_counter()
                    result = direct.execute(code) if side == "direct" else fleet.execute(code)
                    latency[side].append(time.perf_counter() - t0)
                    check([result], [code])
            # the parts of the dispatch path that are the fleet's own: a Ray round trip to the
            # node and one durable record in the dispatcher's log
            for i in range(args.latency_samples):
                t0 = time.perf_counter()
                fleet.node_stats()
                latency["ray_round_trip"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fleet.log.append("bench.probe", {"i": i})
                latency["dispatcher_record"].append(time.perf_counter() - t0)
        pool.shutdown()
        direct.close()
        report = verify_fleet(
            root / "dispatcher-log",
            trust_root=root / "dispatcher.pub",
            node_list=root / "nodes.json",
            node_logs={"n1": root / "node-log"},
        )
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    print(table(["round", "side", "programs", "wall s", "programs/s"], rows))
    direct_rate = statistics.fmean(throughput["direct"])
    fleet_rate = statistics.fmean(throughput["fleet"])
    ratio = fleet_rate / direct_rate
    lat = {side: summary(v) for side, v in latency.items()}
    overhead_ms = lat["fleet"]["p50_ms"] - lat["direct"]["p50_ms"]
    print(
        f"\nthroughput: direct {direct_rate:.2f}/s, fleet {fleet_rate:.2f}/s, "
        f"ratio fleet/direct = {ratio:.3f}"
    )
    print(
        f"one program at a time (p50): direct {lat['direct']['p50_ms']:.1f} ms, fleet "
        f"{lat['fleet']['p50_ms']:.1f} ms, difference {overhead_ms:.1f} ms; the fleet's own "
        f"part: Ray round trip {lat['ray_round_trip']['p50_ms']:.2f} ms + dispatcher record "
        f"{lat['dispatcher_record']['p50_ms']:.2f} ms"
    )
    print(
        f"fleet verification: {'intact' if report.ok else report.problems}; "
        f"{report.receipts} receipts checked"
    )
    verdicts = [
        verdict("fleet throughput >= 90% of direct", ratio >= 0.9, f"ratio {ratio:.3f}"),
        verdict("every log and receipt verifies", report.ok, f"{report.receipts} receipts"),
    ]
    write_json(
        "fleet_bench",
        {
            "machine": machine_info(),
            "settings": vars(args),
            "rounds": [
                dict(zip(["round", "side", "programs", "wall_s", "per_s"], r, strict=True))
                for r in rows
            ],
            "throughput_per_s": {"direct": direct_rate, "fleet": fleet_rate},
            "ratio_fleet_over_direct": ratio,
            "single_latency": lat,
            "dispatch_overhead_p50_ms": overhead_ms,
            "fleet_own_p50_ms": (
                lat["ray_round_trip"]["p50_ms"] + lat["dispatcher_record"]["p50_ms"]
            ),
            "receipts_verified": report.receipts,
            "verdicts": verdicts,
        },
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
