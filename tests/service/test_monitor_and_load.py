"""Live monitoring (ps, /v1/cells, /metrics from the cgroups) and a bounded loopback load test."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import managed_containers, wait_until
from tests.service.conftest import bearer, cli, make_token

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# long enough to outlive every check below on a loaded machine (each CLI call starts Python; the
# token's policy allows 120 s); 8 s was not, under a full parallel suite
BUSY = "x = bytearray(40_000_000)\nimport time\nt = time.time()\nwhile time.time() - t < 30: pass"


def _mine(cells: list[dict[str, Any]], pid: int) -> list[dict[str, Any]]:
    return [c for c in cells if c["owner_pid"] == pid]


def test_ps_cells_and_metrics_show_a_live_cell(svc_env, start_server) -> None:
    token, _ = make_token(svc_env)
    server = start_server("serve")
    done: list[httpx.Response] = []
    t = threading.Thread(
        target=lambda: done.append(
            httpx.post(
                server.url + "/v1/run", json={"code": BUSY}, headers=bearer(token), timeout=120
            )
        )
    )
    t.start()
    try:
        ps: list[dict[str, Any]] = []

        def busy_cell() -> bool:
            ps[:] = _mine(json.loads(cli(svc_env, "ps", "--json").stdout), server.pid)
            return bool(ps) and (ps[0]["memory_bytes"] or 0) > 40_000_000

        assert wait_until(busy_cell, 60)
        cell = ps[0]
        assert cell["runtime"] == "runc" and cell["kind"] == "cell"
        assert cell["pids"] >= 1 and cell["cpu_percent"] is not None and cell["age_s"] >= 0
        assert str(server.pid) in cell["owner"]
        listed = httpx.get(server.url + "/v1/cells", headers=bearer(token), timeout=60).json()
        assert [c["container_id"] for c in listed["cells"]] == [cell["container_id"]]
        assert len(listed["runs"]) == 1 and listed["runs"][0]["caller"].startswith("token:")
        text = httpx.get(server.url + "/metrics", timeout=60).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["cellblock_live_cells"].samples[0].value == 1
        assert families["cellblock_runs_in_flight"].samples[0].value == 1
        memory = families["cellblock_cell_memory_bytes"].samples
        assert memory and memory[0].value > 40_000_000
        human = cli(svc_env, "ps").stdout
        assert cell["id"] in human and "runc" in human
        top = cli(svc_env, "top", "--iterations", "1", "--interval", "0.2").stdout
        assert "cellblock cells" in top and "RUNTIME" in top
    finally:
        t.join(120)
    assert done and done[0].json()["status"] == "ok"


def _bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "service_bench.py"
    spec = importlib.util.spec_from_file_location("service_bench", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_every_request_recorded_log_verifies_nothing_left(tmp_path, docker_client) -> None:
    result = _bench().measure(24, 2, tmp_path)
    print(json.dumps(result, indent=2))  # figures for the log; no timing is asserted
    assert result["accepted"] == 24 and result["lib_ok"] == 24
    assert result["audit_complete"] and result["audit_verifies"]
    pool = result["pool"]  # scraped from the server's /metrics
    assert pool["hits"] + pool["misses"] >= 24 and pool["ready"] >= 0
    assert wait_until(lambda: not managed_containers(docker_client, result["server_pid"]), 30)
