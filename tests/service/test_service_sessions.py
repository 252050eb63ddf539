"""Service sessions and rich outputs end to end: the SDK's own MCP client over stdio, the HTTP
API against real server processes, real containers."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import managed_containers
from tests.service.conftest import (
    CELLBLOCK,
    POLICIES,
    REVIEW,
    audit_records,
    bearer,
    cli,
    make_token,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PACKAGES = str(POLICIES / "svc-packages.yaml")  # permits the `data` image

CHART = """\
import matplotlib.pyplot as plt
fig = plt.figure(figsize=(4, 3), dpi=50)
plt.plot([1, 2, 3], [3, 1, 2])
plt.savefig("chart.png")
print("saved")
"""


def stdio(
    env: dict[str, str], tmp_path: Path, policy: str, fn: Callable[[ClientSession], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        params = StdioServerParameters(
            command=CELLBLOCK, args=["mcp", "--policy", policy, "--no-warm"], env=env
        )
        with open(tmp_path / "mcp.log", "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await fn(session)

    result = asyncio.run(main())
    assert "Traceback" not in (tmp_path / "mcp.log").read_text()
    return result


def test_run_python_takes_text_and_base64_files(svc_env, tmp_path) -> None:
    blob = bytes(range(256))
    code = (
        "import hashlib\n"
        "print(open('data/in.csv').read().strip())\n"
        "print(hashlib.sha256(open('blob.bin', 'rb').read()).hexdigest())\n"
    )

    async def scenario(session: ClientSession) -> dict[str, Any]:
        ok = await session.call_tool(
            "run_python",
            {
                "code": code,
                "files": {
                    "data/in.csv": "a,b\n1,2",
                    "blob.bin": {"base64": base64.b64encode(blob).decode()},
                },
            },
        )
        bad64 = await session.call_tool(
            "run_python", {"code": "print(1)", "files": {"x.bin": {"base64": "@@not base64@@"}}}
        )
        badname = await session.call_tool(
            "run_python", {"code": "print(1)", "files": {"../escape.txt": "x"}}
        )
        # the stdio caller's request-size quota is 1 MiB: a 2 MiB file is refused, nothing runs
        toobig = await session.call_tool(
            "run_python", {"code": "print(1)", "files": {"big.txt": "x" * (2 * 1024 * 1024)}}
        )
        return locals()

    out = stdio(svc_env, tmp_path, REVIEW, scenario)
    ok = out["ok"]
    assert not ok.isError, ok.content
    import hashlib

    assert ok.structuredContent["stdout"].split() == [
        "a,b",
        "1,2",
        hashlib.sha256(blob).hexdigest(),
    ]
    assert [c.type for c in ok.content] == ["text"]  # no image was produced
    for name in ("bad64", "badname", "toobig"):
        result = out[name]
        assert result.isError, name
        reason = result.structuredContent["reason"]
        assert reason["code"] == "invalid_input" and reason["field"] == "files", (name, reason)
    assert "base64" in out["bad64"].structuredContent["reason"]["message"]
    assert "above the cap" in out["toobig"].structuredContent["reason"]["message"]


def test_run_python_returns_a_chart_as_image_content(svc_env, tmp_path, data_image) -> None:
    async def scenario(session: ClientSession) -> Any:
        return await session.call_tool("run_python", {"code": CHART, "image": "data"})

    result = stdio(svc_env, tmp_path, PACKAGES, scenario)
    assert not result.isError, result.content
    assert result.structuredContent["stdout"].strip() == "saved", result.structuredContent
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1 and images[0].mimeType == "image/png"
    png = base64.b64decode(images[0].data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (200, 150)
    (meta,) = result.structuredContent["artifacts"]
    assert meta["name"] == "chart.png" and meta["size"] == len(png)


# -- sessions over MCP ---------------------------------------------------------------------------


def test_mcp_session_keeps_state_and_handles_files(svc_env, tmp_path) -> None:
    async def scenario(session: ClientSession) -> dict[str, Any]:
        tools = {t.name for t in (await session.list_tools()).tools}
        opened = await session.call_tool("session_open", {"idle_timeout_s": 120})
        sid = opened.structuredContent["session_id"]
        first = await session.call_tool("session_run", {"session_id": sid, "code": "x = 41"})
        second = await session.call_tool("session_run", {"session_id": sid, "code": "x + 1"})
        blocked = await session.call_tool(
            "session_run", {"session_id": sid, "code": "import ctypes"}
        )
        after = await session.call_tool("session_run", {"session_id": sid, "code": "x * 2"})
        up = await session.call_tool(
            "session_upload", {"session_id": sid, "files": {"in.txt": "hello"}}
        )
        read = await session.call_tool(
            "session_run",
            {"session_id": sid, "code": "open('out.txt', 'w').write(open('in.txt').read()[::-1])"},
        )
        files = await session.call_tool("session_files", {"session_id": sid})
        down = await session.call_tool(
            "session_download", {"session_id": sid, "patterns": ["out.txt"]}
        )
        listed = await session.call_tool("session_list", {})
        closed = await session.call_tool("session_close", {"session_id": sid})
        gone = await session.call_tool("session_run", {"session_id": sid, "code": "x"})
        unknown = await session.call_tool("session_close", {"session_id": "0" * 32})
        listed_after = await session.call_tool("session_list", {})
        return locals()

    out = stdio(svc_env, tmp_path, REVIEW, scenario)
    assert {"session_open", "session_run", "session_upload", "session_download"} <= out["tools"]
    assert {"session_files", "session_list", "session_close"} <= out["tools"]
    assert not out["opened"].isError, out["opened"].content
    assert out["first"].structuredContent["status"] == "ok"
    assert out["second"].structuredContent["value"] == "42"
    blocked = out["blocked"].structuredContent
    assert blocked["status"] == "blocked" and blocked["findings"], blocked
    assert blocked["session_ended"] is None
    assert out["after"].structuredContent["value"] == "82"  # a blocked step kept the state
    assert out["up"].structuredContent["files"][0]["size"] == 5
    assert out["read"].structuredContent["status"] == "ok", out["read"].structuredContent
    names = {f["name"] for f in out["files"].structuredContent["files"]}
    assert {"in.txt", "out.txt"} <= names
    (got,) = out["down"].structuredContent["files"]
    assert base64.b64decode(got["data_base64"]) == b"olleh"
    assert [s["session_id"] for s in out["listed"].structuredContent["sessions"]] == [out["sid"]]
    assert not out["closed"].isError
    for name in ("gone", "unknown"):
        assert out[name].isError and out[name].structuredContent["reason"]["code"] == "not_found"
    assert out["listed_after"].structuredContent["sessions"] == []


def test_mcp_session_chart_step_returns_image_content(svc_env, tmp_path, data_image) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.figure(figsize=(4, 3), dpi=50)\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\n"
        "len('drawn')"
    )

    async def scenario(session: ClientSession) -> Any:
        opened = await session.call_tool("session_open", {"image": "data"})
        assert not opened.isError, opened.content
        sid = opened.structuredContent["session_id"]
        step = await session.call_tool("session_run", {"session_id": sid, "code": code})
        await session.call_tool("session_close", {"session_id": sid})
        return step

    step = stdio(svc_env, tmp_path, PACKAGES, scenario)
    assert not step.isError, step.content
    assert step.structuredContent["status"] == "ok", step.structuredContent
    assert step.structuredContent["value"] == "5"
    images = [c for c in step.content if c.type == "image"]
    assert len(images) == 1 and images[0].mimeType == "image/png"
    png = base64.b64decode(images[0].data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (200, 150)


# -- sessions over HTTP --------------------------------------------------------------------------


def test_http_sessions_are_private_and_leave_nothing(svc_env, start_server, docker_client) -> None:
    alice, _ = make_token(svc_env, "alice", concurrent=1, max_request=4096)
    bob, _ = make_token(svc_env, "bob")
    server = start_server("serve")
    http = httpx.Client(base_url=server.url, timeout=180)

    opened = http.post("/v1/sessions", json={"idle_timeout_s": 120}, headers=bearer(alice))
    assert opened.status_code == 201, opened.text
    sid = opened.json()["session_id"]
    (container,) = managed_containers(docker_client, server.pid)
    # `cellblock ps` lists it, as a session
    ps = json.loads(cli(svc_env, "ps", "--json").stdout)
    assert [c["kind"] for c in ps if c["container_id"] == container["Id"]] == ["session"]

    step = http.post(f"/v1/sessions/{sid}/steps", json={"code": "x = 6"}, headers=bearer(alice))
    assert step.status_code == 200 and step.json()["status"] == "ok", step.text
    step = http.post(f"/v1/sessions/{sid}/steps", json={"code": "x * 7"}, headers=bearer(alice))
    assert step.json()["value"] == "42"
    up = http.post(
        f"/v1/sessions/{sid}/files",
        json={"files": {"a.csv": {"text": "n\n1\n"}, "b.bin": {"base64": "AAEC"}}},
        headers=bearer(alice),
    )
    assert up.status_code == 200, up.text
    listing = http.get(f"/v1/sessions/{sid}/files", headers=bearer(alice)).json()
    assert {"a.csv", "b.bin"} <= {f["name"] for f in listing["files"]}
    down = http.post(
        f"/v1/sessions/{sid}/files/download", json={"patterns": ["*.bin"]}, headers=bearer(alice)
    ).json()
    assert [base64.b64decode(a["data_base64"]) for a in down["artifacts"]] == [b"\x00\x01\x02"]

    # another token: the session does not exist for it, whatever it tries
    for method, path, body in [
        ("POST", f"/v1/sessions/{sid}/steps", {"code": "x"}),
        ("POST", f"/v1/sessions/{sid}/files", {"files": {"c.txt": {"text": "x"}}}),
        ("GET", f"/v1/sessions/{sid}/files", None),
        ("POST", f"/v1/sessions/{sid}/files/download", {"patterns": ["*"]}),
        ("DELETE", f"/v1/sessions/{sid}", None),
    ]:
        r = http.request(method, path, json=body, headers=bearer(bob))
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
        unknown = http.request(method, path.replace(sid, "f" * 32), json=body, headers=bearer(bob))
        assert unknown.json() == {
            "error": {
                **r.json()["error"],
                "message": r.json()["error"]["message"].replace(sid, "f" * 32),
            }
        }
    assert http.get("/v1/sessions", headers=bearer(bob)).json()["sessions"] == []
    assert [
        s["session_id"] for s in http.get("/v1/sessions", headers=bearer(alice)).json()["sessions"]
    ] == [sid]

    # 401, 413, 422 and 429 as for runs
    assert http.post("/v1/sessions", json={}).status_code == 401
    big = http.post(
        f"/v1/sessions/{sid}/files",
        json={"files": {"big.txt": {"text": "x" * 8192}}},
        headers=bearer(alice),
    )
    assert big.status_code == 413, big.text
    bad = http.post(f"/v1/sessions/{sid}/steps", json={"cod": "1"}, headers=bearer(alice))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "code"
    over = http.post("/v1/sessions", json={}, headers=bearer(alice))  # max_concurrent 1
    assert over.status_code == 429 and "Retry-After" in over.headers, over.text
    # Bob's session is not Alice's quota
    bobs = http.post("/v1/sessions", json={}, headers=bearer(bob))
    assert bobs.status_code == 201, bobs.text

    assert http.delete(f"/v1/sessions/{sid}", headers=bearer(alice)).json()["closed"] == "closed"
    assert (
        http.post(
            f"/v1/sessions/{sid}/steps", json={"code": "x"}, headers=bearer(alice)
        ).status_code
        == 404
    )
    # Alice's slot is free again
    again = http.post("/v1/sessions", json={}, headers=bearer(alice))
    assert again.status_code == 201, again.text
    assert wait_for(lambda: len(managed_containers(docker_client, server.pid)) == 2)

    # SIGTERM: every session ends, its container with it, and the log says so
    server.stop()
    assert wait_for(lambda: not managed_containers(docker_client, server.pid))
    records = audit_records(svc_env)
    closed = {
        r["payload"]["session_id"]: r["payload"]["reason"]
        for r in records
        if r["type"] == "session.closed"
    }
    assert closed[sid] == "closed"
    assert closed[bobs.json()["session_id"]] == "server shutdown"
    assert closed[again.json()["session_id"]] == "server shutdown"
    (shutdown,) = [r["payload"] for r in records if r["type"] == "service.shutdown"]
    assert shutdown["sessions_closed"] == 2
    service = [r["payload"] for r in records if r["type"] == "service.session.opened"]
    assert {r["caller"]["name"] for r in service} == {"alice", "bob"}
    # the OpenAPI document of a fresh server lists the routes
    server2 = start_server("serve")
    doc = httpx.get(server2.url + "/openapi.json", timeout=30).json()
    for path in (
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/steps",
        "/v1/sessions/{session_id}/files",
        "/v1/sessions/{session_id}/files/download",
    ):
        assert path in doc["paths"], path


def test_readme_session_curl_calls(svc_env, start_server) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Service: HTTP API and MCP server") :]
    block = next(b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "/v1/sessions" in b)
    if shutil.which("jq") is None:
        pytest.skip("the README's session example uses jq, which is not installed")
    token, _ = make_token(svc_env, "readme")
    server = start_server("serve")
    script = block.replace("http://127.0.0.1:8765", server.url)
    out = subprocess.run(
        ["bash", "-euc", script],
        env={**svc_env, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    replies, text, decoder = [], out.stdout.strip(), json.JSONDecoder()
    while text:  # curl prints the bodies back to back
        reply, end = decoder.raw_decode(text)
        replies.append(reply)
        text = text[end:].strip()
    assert [r.get("status") for r in replies[:2]] == ["ok", "ok"]
    assert replies[1]["value"] == "42"
    assert replies[2]["closed"] == "closed"


def test_mcp_http_sessions_are_private_to_the_token(svc_env, start_server, docker_client) -> None:
    from mcp.client.streamable_http import streamable_http_client

    alice, _ = make_token(svc_env, "alice")
    bob, _ = make_token(svc_env, "bob")
    server = start_server("mcp", "--http")

    async def as_caller(token: str, fn: Callable[[ClientSession], Awaitable[Any]]) -> Any:
        async with (
            httpx.AsyncClient(headers=bearer(token), timeout=httpx.Timeout(120, read=300)) as h,
            streamable_http_client(server.url + "/mcp", http_client=h) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await fn(session)

    async def scenario() -> dict[str, Any]:
        async def open_and_set(s: ClientSession) -> str:
            sid = (await s.call_tool("session_open", {})).structuredContent["session_id"]
            await s.call_tool("session_run", {"session_id": sid, "code": "secret = 7"})
            return str(sid)

        sid = await as_caller(alice, open_and_set)

        async def intrude(s: ClientSession) -> list[Any]:
            return [
                await s.call_tool("session_run", {"session_id": sid, "code": "secret"}),
                await s.call_tool("session_files", {"session_id": sid}),
                await s.call_tool("session_close", {"session_id": sid}),
                await s.call_tool("session_list", {}),
            ]

        tried = await as_caller(bob, intrude)

        async def use_and_close(s: ClientSession) -> list[Any]:
            return [
                await s.call_tool("session_run", {"session_id": sid, "code": "secret"}),
                await s.call_tool("session_close", {"session_id": sid}),
            ]

        mine = await as_caller(alice, use_and_close)
        return {"sid": sid, "tried": tried, "mine": mine}

    out = asyncio.run(scenario())
    run, files, close, listed = out["tried"]
    for result in (run, files, close):
        assert result.isError and result.structuredContent["reason"]["code"] == "not_found"
    assert listed.structuredContent["sessions"] == []
    step, closed = out["mine"]
    assert step.structuredContent["value"] == "7" and not closed.isError
    assert wait_for(lambda: not managed_containers(docker_client, server.pid))


def test_http_idle_session_ends_and_frees_its_slot(svc_env, start_server, docker_client) -> None:
    token, _ = make_token(svc_env, "idle", concurrent=1)
    server = start_server("serve")
    http = httpx.Client(base_url=server.url, timeout=180, headers=bearer(token))
    first = http.post("/v1/sessions", json={"idle_timeout_s": 1})
    assert first.status_code == 201, first.text
    assert http.post("/v1/sessions", json={}).status_code == 429  # the session holds the slot
    # idle past its limit: the session ends, its container goes, the server frees the slot
    assert wait_for(lambda: http.get("/v1/sessions").json()["sessions"] == [], 90)
    assert wait_for(lambda: not managed_containers(docker_client, server.pid), 60)
    sid = first.json()["session_id"]
    gone = http.post(f"/v1/sessions/{sid}/steps", json={"code": "1"})
    assert gone.status_code == 404, gone.text
    second = http.post("/v1/sessions", json={})
    assert second.status_code == 201, second.text
    http.delete(f"/v1/sessions/{second.json()['session_id']}")
