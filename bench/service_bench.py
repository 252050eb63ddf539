"""Load on the HTTP API against the library called directly, in the same run (loopback only).

    .venv/bin/python bench/service_bench.py                     # 200 requests, 4 clients
    .venv/bin/python bench/service_bench.py --requests 60 --clients 2

Starts a real ``cellblock serve`` on a free loopback port with a private token file and audit
log, then runs the same program (``print(1)``) N times through (a) ``Pipeline.execute`` in this
process and (b) ``POST /v1/run``, each with the same number of concurrent clients and the same
policy (runc, warm pool of 2). Prints p50/p99 latency and throughput of both and the p50
difference (the goal: the HTTP path adds at most 5 ms at p50). Afterwards checks that every
accepted request has its audit records, that the log verifies, and that no container is left.
Results: bench/results/service_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import percentile

ROOT = Path(__file__).resolve().parent.parent
CELLBLOCK = str(Path(sys.executable).with_name("cellblock"))
POLICY = """\
version: 1
name: bench-service
assessment: {deep: never}
decisions: {none: allow, low: allow, medium: allow, high: block, critical: block}
profiles:
  open: {cpus: 1.0, memory: 256m, pids: 64, timeout: 30s, runtime: runc}
decision_profiles: {allow: open, restrict: open, review: open}
pool: {enabled: true, size: 2}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(fn: Callable[[], Any], n: int, clients: int) -> tuple[list[float], float, list[Any]]:
    def one(_i: int) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    return [d for d, _ in done], wall, [o for _, o in done]


def _stats(latencies: list[float], wall: float) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "throughput_rps": round(len(ms) / wall, 2),
    }


def measure(requests: int, clients: int, workdir: Path) -> dict[str, Any]:
    import httpx

    from cellblock.pipeline import Pipeline

    policy = workdir / "bench-service.yaml"
    policy.write_text(POLICY)
    env = dict(os.environ)
    env["CELLBLOCK_TOKENS"] = str(workdir / "tokens.json")
    env["CELLBLOCK_AUDIT_DIR"] = str(workdir / "audit")
    token = json.loads(
        subprocess.run(
            [
                CELLBLOCK,
                "token",
                "create",
                "bench",
                "--policy",
                str(policy),
                "--json",
                "--concurrent",
                str(clients),
                "--per-minute",
                "100000",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["token"]
    port = _free_port()
    server = subprocess.Popen(
        [CELLBLOCK, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "server.log", "wb"),  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(
            headers=headers, timeout=120, limits=httpx.Limits(max_connections=clients)
        ) as client:

            def http_run() -> dict[str, Any]:
                t0 = time.perf_counter()
                r = client.post(url + "/v1/run", json={"code": "print(1)"})
                elapsed_ms = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                pipeline_ms = float(r.headers["server-timing"].split("dur=")[1])
                return {**r.json(), "_http_overhead_ms": elapsed_ms - pipeline_ms}

            for _ in range(clients * 2):  # warm the server's pool and connections
                http_run()
            with Pipeline(str(policy), audit_dir=workdir / "audit-direct") as pipeline:
                pipeline.warm()
                for _ in range(clients * 2):
                    pipeline.execute("print(1)")
                # alternate slices of both variants so that engine load drifts hit both alike
                http_lat: list[float] = []
                lib_lat: list[float] = []
                http_out: list[dict[str, Any]] = []
                lib_out: list[Any] = []
                http_wall = lib_wall = 0.0
                slice_n = max(clients * 2, requests // 10)
                left = requests
                while left > 0:
                    n = min(slice_n, left)
                    lat, wall, out = _timed(http_run, n, clients)
                    http_lat += lat
                    http_wall += wall
                    http_out += out
                    lat, wall, out = _timed(lambda: pipeline.execute("print(1)"), n, clients)
                    lib_lat += lat
                    lib_wall += wall
                    lib_out += out
                    left -= n
        metrics = httpx.get(url + "/metrics", timeout=60).text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)

    accepted = [o["run_id"] for o in http_out if o["status"] == "ok"]
    records: dict[str, set[str]] = {}
    for seg in sorted((workdir / "audit").glob("seg-*.jsonl")):
        for line in seg.read_text().splitlines():
            rec = json.loads(line)["record"]
            run_id = rec["payload"].get("run_id")
            if run_id:
                records.setdefault(run_id, set()).add(rec["type"])
    complete = all(
        {"assessment", "decision", "execution.started", "execution.finished"}
        <= records.get(r, set())
        for r in accepted
    )
    verify = subprocess.run([CELLBLOCK, "audit", "verify"], env=env, capture_output=True, text=True)
    http, lib = _stats(http_lat, http_wall), _stats(lib_lat, lib_wall)
    from prometheus_client.parser import text_string_to_metric_families

    scraped = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if family.name.startswith("cellblock_pool_")
    }
    return {
        "requests": requests,
        "clients": clients,
        "http": http,
        "library": lib,
        # noisy: both variants are bound by the engine, which other work shares
        "p50_difference_ms": round(http["p50_ms"] - lib["p50_ms"], 2),
        # per request: client latency minus the server's time in the pipeline (Server-Timing)
        "http_overhead_p50_ms": round(
            percentile([o["_http_overhead_ms"] for o in http_out], 50), 3
        ),
        "http_overhead_p99_ms": round(
            percentile([o["_http_overhead_ms"] for o in http_out], 99), 3
        ),
        "pool": {
            "hits": scraped.get("cellblock_pool_hits_total", 0),
            "misses": scraped.get("cellblock_pool_misses_total", 0),
            "ready": scraped.get("cellblock_pool_ready", 0),
        },
        "lib_ok": sum(1 for r in lib_out if r.status == "ok"),
        "accepted": len(accepted),
        "audit_complete": complete,
        "audit_verifies": verify.returncode == 0,
        "server_pid": server.pid,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellblock-service-bench-") as tmp:
        result = measure(args.requests, args.clients, Path(tmp))
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "service_bench.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
