"""The README's curl call and MCP client configuration work against real server processes."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.service.conftest import CELLBLOCK, POLICIES, REVIEW, cli

PACKAGES = str(POLICIES / "svc-packages.yaml")

pytestmark = [pytest.mark.docker, pytest.mark.slow]

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README[README.index("## Service: HTTP API and MCP server") :]


def test_readme_curl_calls(svc_env, start_server, tmp_path) -> None:
    block = re.search(r"```sh\n(.*?)```", SECTION, re.S).group(1)  # type: ignore[union-attr]
    text = " ".join(
        line.rstrip("\\").strip()
        for line in block.splitlines()
        if line.strip().startswith(("curl", "-d"))
    )
    calls = ["curl" + c.split("#")[0] for c in text.split("curl")[1:]]
    assert len(calls) == 2 and all("/v1/run" in c for c in calls)
    # the packages policy: runc only, per-run packages allowed like the README's `standard`
    token = cli(svc_env, "token", "create", "readme", "--policy", PACKAGES).stdout.strip()
    server = start_server("serve")
    results = []
    for curl in calls:
        argv = [a.replace("$TOKEN", token) for a in shlex.split(curl)]
        argv = [a.replace("http://127.0.0.1:8765", server.url) for a in argv]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
        results.append(json.loads(out.stdout))
    assert results[0]["status"] == "ok" and results[0]["stdout"] == "42\n"
    assert results[1]["status"] == "ok" and results[1]["stdout"] == "-  -\n1  2\n-  -\n"
    assert results[1]["packages"]["action"] == "allow"


def test_readme_mcp_client_configuration(svc_env, tmp_path) -> None:
    block = re.search(r"```json\n(.*?)```", SECTION, re.S).group(1)  # type: ignore[union-attr]
    entry = json.loads(block)["mcpServers"]["cellblock"]
    assert entry["command"] == "cellblock"
    args = [REVIEW if a == "standard" else a for a in entry["args"]]  # runc-only test policy

    async def scenario() -> dict:
        params = StdioServerParameters(command=CELLBLOCK, args=args, env=svc_env)
        with open(tmp_path / "mcp.log", "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                result = await session.call_tool("run_python", {"code": "print(6 * 7)"})
                return dict(result.structuredContent or {})

    assert asyncio.run(scenario())["stdout"] == "42\n"
