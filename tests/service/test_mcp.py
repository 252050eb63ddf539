"""The MCP server end to end with the SDK's own client: stdio and streamable HTTP, real processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitResult

from tests.service.conftest import CELLBLOCK, REVIEW, audit_records, bearer, make_token

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REVIEW_CODE = "import os; x = eval(os.environ.get('E', '6 * 7'))\nprint(x)"


def approve(answer: bool | None) -> Callable[..., Awaitable[ElicitResult]]:
    """An elicitation callback: the person approves, declines (False) or cancels (None)."""
    asked: list[str] = []

    async def callback(_context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        if answer is None:
            return ElicitResult(action="cancel")
        if answer is False:
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"approve": True, "reason": "looks fine"})

    callback.asked = asked  # type: ignore[attr-defined]
    return callback


async def _stdio(
    env: dict[str, str],
    log: Path,
    fn: Callable[[ClientSession], Awaitable[Any]],
    elicitation: Any = None,
) -> Any:
    params = StdioServerParameters(
        command=CELLBLOCK, args=["mcp", "--policy", REVIEW, "--no-warm"], env=env
    )
    with open(log, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, elicitation_callback=elicitation) as session,
        ):
            await session.initialize()
            return await fn(session)


def stdio(env: dict[str, str], tmp_path: Path, fn: Any, elicitation: Any = None) -> Any:
    result = asyncio.run(_stdio(env, tmp_path / "mcp.log", fn, elicitation))
    assert "Traceback" not in (tmp_path / "mcp.log").read_text()
    return result


def test_stdio_tools_resource_and_runs(svc_env, tmp_path) -> None:
    async def scenario(session: ClientSession) -> dict[str, Any]:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        policy = await session.read_resource("cellblock://policy")
        ok = await session.call_tool("run_python", {"code": "print(6 * 7)"})
        blocked = await session.call_tool("run_python", {"code": "print(1)\nimport ctypes"})
        review = await session.call_tool("run_python", {"code": REVIEW_CODE})
        assessed = await session.call_tool("assess_python", {"code": "import ctypes"})
        packages = await session.call_tool(
            "run_python", {"code": "import numpy", "packages": ["numpy"]}
        )
        bad = await session.call_tool("run_python", {"timeout_s": 5})
        return locals()

    out = stdio(svc_env, tmp_path, scenario)
    tools = out["tools"]
    assert set(tools) >= {"run_python", "assess_python"}
    schema = tools["run_python"].inputSchema
    assert schema["required"] == ["code"] and schema["properties"]["code"]["description"]
    assert "sandbox" in tools["run_python"].description
    assert tools["assess_python"].annotations.readOnlyHint is True
    policy = json.loads(out["policy"].contents[0].text)
    assert policy["policy"]["name"] == "svc-review"

    ok = out["ok"]
    assert not ok.isError and ok.structuredContent["status"] == "ok"
    assert ok.structuredContent["stdout"] == "42\n" and "42" in ok.content[0].text

    blocked = out["blocked"].structuredContent
    assert blocked["status"] == "blocked" and blocked["ran"] is False
    reason = blocked["reason"]
    assert reason["code"] == "blocked" and reason["decision"] == "block"
    assert reason["level"] == "critical"
    assert any(f["line"] == 2 and f["rule_id"] for f in reason["findings"])

    review = out["review"].structuredContent  # this client has no elicitation: refused
    assert review["status"] == "not_approved" and review["reason"]["decision"] == "review"
    assert "elicitation" in review["reason"]["message"]
    assert any(f["line"] == 1 for f in review["reason"]["findings"])

    assessed = out["assessed"].structuredContent
    assert assessed["level"] == "critical" and assessed["decision"]["action"] == "block"
    assert out["packages"].isError
    # svc-review allows no per-run packages: refused by name, before any download
    assert out["packages"].structuredContent["reason"]["code"] == "packages_refused"
    assert out["packages"].structuredContent["reason"]["kind"] == "denied"
    assert out["bad"].isError and "code" in out["bad"].content[0].text

    runs = [r for r in audit_records(svc_env) if r["type"] == "execution.finished"]
    assert runs and all(r["payload"]["caller"]["via"] == "mcp-stdio" for r in runs)


@pytest.mark.parametrize("answer", [True, False, None], ids=["accepted", "declined", "cancelled"])
def test_stdio_review_asks_the_person_through_elicitation(svc_env, tmp_path, answer) -> None:
    callback = approve(answer)

    async def scenario(session: ClientSession) -> Any:
        return await session.call_tool("run_python", {"code": REVIEW_CODE})

    result = stdio(svc_env, tmp_path, scenario, elicitation=callback).structuredContent
    assert len(callback.asked) == 1  # type: ignore[attr-defined]
    assert "line 1" in callback.asked[0] and "eval" in callback.asked[0]  # type: ignore[attr-defined]
    approvals = [r["payload"] for r in audit_records(svc_env) if r["type"] == "approval"]
    assert len(approvals) == 1 and approvals[0]["by"].startswith("mcp-elicitation:local:")
    if answer:
        assert result["status"] == "ok" and result["stdout"] == "42\n"
        assert result["approval"]["approved"] is True and approvals[0]["approved"] is True
    else:
        assert result["status"] == "not_approved" and result["ran"] is False
        assert result["reason"]["code"] == "not_approved"
        assert approvals[0]["approved"] is False


async def _http(url: str, token: str, fn: Any, elicitation: Any = None) -> Any:
    timeout = httpx.Timeout(120, read=300)
    async with (
        httpx.AsyncClient(headers=bearer(token), timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write, _sid),
        ClientSession(read, write, elicitation_callback=elicitation) as session,
    ):
        await session.initialize()
        return await fn(session)


def test_streamable_http_with_tokens_and_elicitation(svc_env, start_server) -> None:
    token, token_id = make_token(svc_env, "agent")
    server = start_server("mcp", "--http")
    url = server.url + "/mcp"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    r = httpx.post(url, json=init, timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(url, json=init, headers=bearer("cbt_0123456789abcdef_" + "A" * 43), timeout=30)
    assert r.status_code == 401

    async def scenario(session: ClientSession) -> Any:
        ok = await session.call_tool("run_python", {"code": "print('hi')"})
        review = await session.call_tool("run_python", {"code": REVIEW_CODE})
        policy = await session.read_resource("cellblock://policy")
        return ok, review, policy

    callback = approve(True)
    ok, review, policy = asyncio.run(_http(url, token, scenario, callback))
    assert ok.structuredContent["stdout"] == "hi\n"
    assert review.structuredContent["status"] == "ok" and len(callback.asked) == 1  # type: ignore[attr-defined]
    assert json.loads(policy.contents[0].text)["quotas"]["max_concurrent"] == 2

    async def declined(session: ClientSession) -> Any:
        return await session.call_tool("run_python", {"code": REVIEW_CODE})

    no = asyncio.run(_http(url, token, declined, approve(False))).structuredContent
    assert no["status"] == "not_approved"

    # quotas apply over MCP too, as a structured, retryable error
    limited, limited_id = make_token(svc_env, "limited", per_minute=1)

    async def twice(session: ClientSession) -> Any:
        first = await session.call_tool("run_python", {"code": "print(1)"})
        second = await session.call_tool("run_python", {"code": "print(2)"})
        return first, second

    first, second = asyncio.run(_http(url, limited, twice))
    assert first.structuredContent["status"] == "ok"
    assert second.isError and second.structuredContent["reason"]["code"] == "quota_exceeded"
    assert second.structuredContent["reason"]["retry_after_s"] >= 1
    records = [r for r in audit_records(svc_env) if "caller" in r["payload"]]
    assert {r["payload"]["caller"]["token_id"] for r in records} == {token_id, limited_id}
    assert {r["payload"]["caller"]["via"] for r in records} == {"mcp-http"}
