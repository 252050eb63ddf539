"""MCP rich outputs and input files, end to end with the SDK's own client over stdio."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.service.conftest import CELLBLOCK, POLICIES, REVIEW

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
