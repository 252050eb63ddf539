"""The HTTP API as a real process (uvicorn on a loopback port) running real containers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cellblock.audit import default_public_key, verify
from tests.conftest import managed_containers, wait_until
from tests.service.conftest import LOOSE, REVIEW, audit_records, bearer, cli, make_token

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def no_traceback(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_run_returns_result_model_and_audit_names_the_caller(svc_env, start_server) -> None:
    token, token_id = make_token(svc_env, "alice")
    server = start_server("serve")
    r = httpx.post(
        server.url + "/v1/run", json={"code": "print(6 * 7)"}, headers=bearer(token), timeout=120
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["status"] == "ok" and data["stdout"] == "42\n" and data["exit_code"] == 0
    assert data["decision"]["action"] == "allow" and data["policy"]["name"] == "svc-review"
    assert data["caller"] == {
        "subject": f"token:{token_id}",
        "token_id": token_id,
        "name": "alice",
        "via": "http",
    }
    run = [rec for rec in audit_records(svc_env) if rec["payload"].get("run_id") == data["run_id"]]
    assert [rec["type"] for rec in run] == [
        "assessment",
        "decision",
        "execution.started",
        "execution.finished",
    ]
    for rec in run:  # every record of the run names the token, never its secret
        assert rec["payload"]["caller"]["token_id"] == token_id
    assert token.split("_")[2] not in str(audit_records(svc_env))


def test_blocked_and_review_runs_answer_with_the_decision(svc_env, start_server) -> None:
    token, _ = make_token(svc_env)
    server = start_server("serve")
    blocked = httpx.post(
        server.url + "/v1/run", json={"code": "import ctypes"}, headers=bearer(token), timeout=120
    ).json()
    assert blocked["status"] == "blocked" and blocked["exit_code"] is None
    assert blocked["assessment"]["findings"][0]["line"] == 1
    review = httpx.post(
        server.url + "/v1/run",
        json={"code": "import os; eval(os.environ.get('E', '1+1'))"},
        headers=bearer(token),
        timeout=120,
    ).json()
    assert review["status"] == "not_approved" and review["decision"]["action"] == "review"
    assessed = httpx.post(
        server.url + "/v1/assess",
        json={"code": "import os\nos.system('id')"},
        headers=bearer(token),
        timeout=120,
    ).json()
    assert assessed["assessment"]["level"] == "high"
    assert assessed["decision"]["action"] == "review"
    assert any(f["line"] == 2 for f in assessed["assessment"]["findings"])


def test_401_for_missing_malformed_unknown_and_revoked_tokens(svc_env, start_server) -> None:
    token, token_id = make_token(svc_env)
    server = start_server("serve")
    url = server.url + "/v1/run"
    body = {"code": "print(1)"}
    cases = [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer cbt_0123456789abcdef_" + "A" * 43},
        {"Authorization": "Bearer " + token[:-1] + ("B" if token[-1] != "B" else "C")},
    ]
    for headers in cases:
        r = httpx.post(url, json=body, headers=headers, timeout=60)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthenticated"
        no_traceback(r)
    assert httpx.post(url, json=body, headers=bearer(token), timeout=120).status_code == 200
    cli(svc_env, "token", "revoke", token_id)
    r = httpx.post(url, json=body, headers=bearer(token), timeout=60)  # at once, no restart
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    # GET endpoints are protected too
    assert httpx.get(server.url + "/v1/policy", timeout=30).status_code == 401


def test_413_before_the_body_is_read_and_for_chunked_bodies(svc_env, start_server) -> None:
    token, _ = make_token(svc_env, max_request="2k")
    server = start_server("serve")
    big = {"code": "x = 1\n" * 1000}
    r = httpx.post(server.url + "/v1/run", json=big, headers=bearer(token), timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    no_traceback(r)

    def chunks():  # no Content-Length: the gate counts while it reads
        yield b'{"code": "'
        for _ in range(100):
            yield b"#" * 100
        yield b'"}'

    r = httpx.post(
        server.url + "/v1/run",
        content=chunks(),
        timeout=60,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    # a declared length over the quota is answered at once: no byte of the body is sent
    head = raw_request(
        server.port,
        b"POST /v1/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {10**9}\r\n\r\n".encode(),
    )
    assert head.startswith(b"HTTP/1.1 413"), head
    ok = httpx.post(
        server.url + "/v1/run", json={"code": "print(1)"}, headers=bearer(token), timeout=120
    )
    assert ok.status_code == 200


def test_422_names_the_field(svc_env, start_server) -> None:
    token, _ = make_token(svc_env)
    server = start_server("serve")
    url = server.url + "/v1/run"
    cases = {
        "code": {"cod": "print(1)"},
        "timeout_s": {"code": "print(1)", "timeout_s": -1},
        "policy": {"code": "print(1)", "policy": LOOSE},
        "caller": {"code": "print(1)", "caller": "admin"},
    }
    for field, body in cases.items():
        r = httpx.post(url, json=body, headers=bearer(token), timeout=60)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field and field in r.json()["error"]["message"]
        no_traceback(r)
    # found by the fuzzer: a tiny positive timeout passed the model and failed as a 5xx
    r = httpx.post(url, json={"code": "", "timeout_s": 5e-324}, headers=bearer(token), timeout=60)
    assert r.status_code == 422 and r.json()["error"]["field"] == "timeout_s"
    r = httpx.post(
        url,
        content=b"{not json",
        timeout=60,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    no_traceback(r)


def test_deeply_nested_json_is_refused_without_a_traceback(svc_env, start_server) -> None:
    token, _ = make_token(svc_env, max_request="1m")
    server = start_server("serve")
    deep = b'{"code": "print(1)", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = httpx.post(
        server.url + "/v1/run",
        content=deep,
        timeout=60,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "nests deeper" in r.json()["error"]["message"]
    no_traceback(r)
    # brackets inside strings do not count
    ok = httpx.post(
        server.url + "/v1/run",
        json={"code": "print('" + "[" * 200 + "')"},
        headers=bearer(token),
        timeout=120,
    )
    assert ok.status_code == 200 and ok.json()["stdout"] == "[" * 200 + "\n"


def test_429_with_retry_after_for_each_quota(svc_env, start_server) -> None:
    slow_token, _ = make_token(svc_env, "slow", concurrent=1)
    rate_token, _ = make_token(svc_env, "rate", per_minute=1)
    server = start_server("serve")
    url = server.url + "/v1/run"
    results: list[httpx.Response] = []
    t = threading.Thread(
        target=lambda: results.append(
            httpx.post(
                url,
                json={"code": "import time; time.sleep(8)"},
                headers=bearer(slow_token),
                timeout=180,
            )
        )
    )
    t.start()
    assert wait_until(lambda: httpx.get(server.url + "/healthz").json()["in_flight"] == 1, 60)
    r = httpx.post(url, json={"code": "print(1)"}, headers=bearer(slow_token), timeout=60)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["quota"] == "max_concurrent"
    # another token is not affected by this one's quota
    assert (
        httpx.post(
            url, json={"code": "print(1)"}, headers=bearer(rate_token), timeout=120
        ).status_code
        == 200
    )
    r = httpx.post(url, json={"code": "print(1)"}, headers=bearer(rate_token), timeout=60)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["error"]["quota"] == "runs_per_minute"
    t.join(180)
    assert results and results[0].status_code == 200


def test_output_quota_caps_stdout(svc_env, start_server) -> None:
    token, _ = make_token(svc_env, max_output="1k")
    server = start_server("serve")
    r = httpx.post(
        server.url + "/v1/run",
        json={"code": "print('x' * 100000)"},
        headers=bearer(token),
        timeout=120,
    ).json()
    assert r["stdout_truncated"] is True and len(r["stdout"]) <= 1024


def test_identity_headers_cannot_be_smuggled(svc_env, start_server) -> None:
    token, token_id = make_token(svc_env, "mallory")
    server = start_server("serve")
    smuggled = {
        "X-Cellblock-Caller": "admin",
        "X-Forwarded-User": "admin",
        "X-Remote-User": "admin",
        "X-Cellblock-Policy": LOOSE,
        "X-Cellblock-Token-Id": "0" * 16,
        "Forwarded": "for=10.0.0.1;by=admin",
    }
    r = httpx.post(
        server.url + "/v1/run",
        json={"code": "print(1)"},
        headers={**bearer(token), **smuggled},
        timeout=120,
    )
    assert r.status_code == 200 and r.json()["caller"]["token_id"] == token_id
    # a second Authorization header (a classic smuggling shape) is refused outright
    body = b'{"code": "print(1)"}'
    head = raw_request(
        server.port,
        b"POST /v1/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nAuthorization: Bearer cbt_x_y\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    assert head.startswith(b"HTTP/1.1 401"), head
    payloads = [rec["payload"] for rec in audit_records(svc_env) if "caller" in rec["payload"]]
    assert payloads and all(p["caller"]["token_id"] == token_id for p in payloads)
    assert "admin" not in str(payloads)


def test_a_caller_cannot_pick_a_looser_policy(svc_env, start_server) -> None:
    token, _ = make_token(svc_env)  # bound to svc-review: high needs a person
    server = start_server("serve")
    code = "import os\nos.system('id')"
    attempts = [
        ({"code": code}, {"X-Cellblock-Policy": LOOSE}),
        ({"code": code}, {"X-Policy": "trusted-dev"}),
    ]
    for body, headers in attempts:
        r = httpx.post(
            server.url + "/v1/run", json=body, headers={**bearer(token), **headers}, timeout=120
        )
        assert r.status_code == 200 and r.json()["status"] == "not_approved"
        assert r.json()["policy"]["name"] == "svc-review"
    r = httpx.post(
        server.url + "/v1/run",
        json={"code": code, "policy": LOOSE},
        headers=bearer(token),
        timeout=60,
    )
    assert r.status_code == 422
    # limits can only tighten: a longer timeout than the policy's is not granted
    r = httpx.post(
        server.url + "/v1/run",
        json={"code": "print(1)", "timeout_s": 86000},
        headers=bearer(token),
        timeout=120,
    ).json()
    assert r["limits"]["timeout_s"] == 120.0
    policy = httpx.get(server.url + "/v1/policy", headers=bearer(token), timeout=30).json()
    assert policy["policy"]["name"] == "svc-review"


def test_openapi_healthz_and_metrics(svc_env, start_server) -> None:
    token, _ = make_token(svc_env)
    server = start_server("serve")
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert {"/v1/run", "/v1/assess", "/v1/policy", "/healthz", "/metrics"} <= set(doc["paths"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    assert (
        httpx.post(
            server.url + "/v1/run", json={"code": "print(1)"}, headers=bearer(token), timeout=120
        ).status_code
        == 200
    )
    httpx.post(server.url + "/v1/run", json={"code": "print(1)"}, timeout=30)  # a 401
    text = httpx.get(server.url + "/metrics", timeout=30).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(sample: str, **labels: str) -> float:
        family = families[sample.removesuffix("_total").removesuffix("_count")]
        return sum(
            s.value
            for s in family.samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert value("cellblock_runs_total", status="ok", runtime="runc") == 1
    assert value("cellblock_run_latency_seconds_count") == 1
    assert value("cellblock_audit_append_seconds_count") >= 4
    assert value("cellblock_http_rejections_total", code="401") == 1
    assert "cellblock_engine_errors_total" in {
        s.name for s in families["cellblock_engine_errors"].samples
    }
    assert "cellblock_live_cells" in families and "cellblock_runs_in_flight" in families


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        return sock.recv(4096)


def _inflight(server: Any) -> int:
    try:
        return int(httpx.get(server.url + "/healthz", timeout=5).json()["in_flight"])
    except httpx.HTTPError:
        return -1


def test_sigterm_lets_short_runs_finish_and_kills_the_rest(
    svc_env, start_server, docker_client
) -> None:
    token, token_id = make_token(svc_env, concurrent=4)
    server = start_server("serve", "--grace", "6")
    responses: dict[str, Any] = {}

    def post(name: str, code: str) -> None:
        try:
            responses[name] = httpx.post(
                server.url + "/v1/run", json={"code": code}, headers=bearer(token), timeout=180
            )
        except httpx.HTTPError as exc:
            responses[name] = exc

    threads = [
        threading.Thread(target=post, args=("short", "import time; time.sleep(2); print('done')")),
        threading.Thread(target=post, args=("long", "import time; time.sleep(600)")),
    ]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(managed_containers(docker_client, server.pid)) == 2, 90)
    assert wait_until(lambda: _inflight(server) == 2, 30)
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=120)
    for t in threads:
        t.join(60)
    short = responses["short"]
    assert isinstance(short, httpx.Response) and short.status_code == 200
    assert short.json()["stdout"] == "done\n"
    long = responses["long"]
    assert isinstance(long, httpx.Response) and long.status_code == 503, long
    assert long.json()["error"]["code"] == "shutting_down"
    assert managed_containers(docker_client, server.pid) == []
    records = audit_records(svc_env)
    shutdown = [r["payload"] for r in records if r["type"] == "service.shutdown"]
    assert len(shutdown) == 1 and shutdown[0]["finished"] == 1
    assert [k["caller"]["token_id"] for k in shutdown[0]["killed"]] == [token_id]
    started = [r["payload"]["run_id"] for r in records if r["type"] == "execution.started"]
    ended = [
        r["payload"]["run_id"]
        for r in records
        if r["type"] in ("execution.finished", "execution.failed")
    ]
    assert sorted(started) == sorted(ended)  # the killed run's end is recorded too
    report = verify(svc_env["CELLBLOCK_AUDIT_DIR"], trust_root=default_public_key())
    assert report.ok, report.to_dict()


def test_sigkill_mid_load_then_restart_reaps_and_the_log_verifies(
    svc_env, start_server, docker_client
) -> None:
    token, _ = make_token(svc_env, concurrent=4)
    server = start_server("serve")

    def post(code: str) -> None:
        _swallow(
            lambda: httpx.post(
                server.url + "/v1/run", json={"code": code}, headers=bearer(token), timeout=120
            )
        )

    threads = [
        threading.Thread(target=post, args=("import time; time.sleep(600)",)) for _ in range(3)
    ]
    threads += [threading.Thread(target=post, args=("print(1)",)) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(managed_containers(docker_client, server.pid)) >= 3, 90)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    for t in threads:
        t.join(60)
    assert len(managed_containers(docker_client, server.pid)) >= 3  # the dead server left them
    start_server("serve")  # ...the next one reaps them at start
    assert managed_containers(docker_client, server.pid) == []
    proc = cli(svc_env, "audit", "verify", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _swallow(fn: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        fn()


def test_fuzz_from_the_openapi_document(svc_env, start_server, tmp_path) -> None:
    """Schemathesis, bounded and deterministic: no input makes the server answer 5xx."""
    token, _ = make_token(svc_env, policy=REVIEW, concurrent=4, per_minute=100000)
    server = start_server("serve")
    st = str(Path(sys.executable).with_name("st"))
    proc = subprocess.run(
        [
            st,
            "run",
            server.url + "/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "-n",
            "8",
            "--checks",
            "not_a_server_error",
            "--request-timeout",
            "120",
            "--generation-deterministic",
            # one worker: with several, hypothesis parses lambdas with ast in threads, which
            # CPython 3.11 can fail ("AST constructor recursion depth mismatch", gh-106905)
            "-w",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_runsc_runs_and_metrics_label_the_runtime(svc_env, start_server, backend) -> None:
    if "runsc" not in backend.runtimes():
        if os.environ.get("CELLBLOCK_REQUIRE_RUNSC"):
            pytest.fail("CELLBLOCK_REQUIRE_RUNSC is set but runsc is not registered")
        pytest.skip("gVisor (runsc) is not registered with the engine")
    policy = str(Path(__file__).parent / "policies" / "svc-runsc.yaml")
    token, _ = make_token(svc_env, policy=policy)
    server = start_server("serve")
    r = httpx.post(
        server.url + "/v1/run", json={"code": "print(6 * 7)"}, headers=bearer(token), timeout=180
    ).json()
    assert r["status"] == "ok" and r["runtime"] == "runsc" and r["stdout"] == "42\n"
    text = httpx.get(server.url + "/metrics", timeout=30).text
    assert 'cellblock_runs_total{runtime="runsc",status="ok"} 1.0' in text
