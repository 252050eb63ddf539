"""Per-run packages and image profiles through the service: real server processes, real
containers, real downloads from the host's configured pip index (a small pinned pure-Python
wheel), and every package/image error as a documented, structured answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.service.conftest import (
    CELLBLOCK,
    POLICIES,
    REVIEW,
    audit_records,
    bearer,
    make_token,
)
from tests.service.test_mcp import approve

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PACKAGES_POLICY = str(POLICIES / "svc-packages.yaml")
# tabulate 0.10.0: small, pure Python, the latest release (the scan has data for it)
TABULATE = "tabulate==0.10.0"
# ecdsa 0.19.2 has a published advisory; svc-packages says review for a vulnerability
VULNERABLE = "ecdsa==0.19.2"
UNKNOWN = "cellblock-no-such-package-zz"
TABLE = "from tabulate import tabulate\nprint(tabulate([['a', 1]], headers=['k', 'v']).split()[0])"


def no_traceback(r: httpx.Response) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_http_packages_and_images(svc_env, start_server) -> None:
    token, token_id = make_token(svc_env, policy=PACKAGES_POLICY, per_minute=1000)
    strict_token, _ = make_token(svc_env, "strict", policy=REVIEW, per_minute=1000)
    server = start_server("serve")
    url = server.url + "/v1/run"

    def run(body: dict[str, Any], tok: str = token) -> httpx.Response:
        r = httpx.post(url, json=body, headers=bearer(tok), timeout=300)
        no_traceback(r)
        return r

    # the schema and the policy document tell a model what exists
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    props = spec["components"]["schemas"]["RunBody"]["properties"]
    assert props["packages"]["anyOf"][0]["maxItems"] == 16
    assert "'data'" in props["image"]["description"] and "numpy" in props["image"]["description"]
    doc = httpx.get(server.url + "/v1/policy", headers=bearer(token), timeout=30).json()
    images = {i["name"]: i for i in doc["images"]}
    assert set(images) == {"base", "data", "reports"} and images["base"]["default"]
    assert images["reports"]["packages"] == [TABULATE]
    assert doc["packages_limits"] == {"max_packages": 16, "max_spec_chars": 200}

    # a real package, downloaded on the host, scanned, sent to the offline sandbox
    ok = run({"code": TABLE, "packages": [TABULATE]})
    assert ok.status_code == 200, ok.text
    data = ok.json()
    assert data["status"] == "ok" and data["stdout"] == "k\n", data
    assert data["packages"]["action"] == "allow" and data["image"] == "base"
    (dist,) = data["packages"]["resolution"]["distributions"]
    assert (dist["name"], dist["version"]) == ("tabulate", "0.10.0")

    # refused by the policy: structured, with the findings; nothing ran
    denied = run({"code": "print(1)", "packages": ["leftpad==1.0"]})
    assert denied.status_code == 403
    err = denied.json()["error"]
    assert (err["code"], err["kind"], err["field"]) == ("packages_refused", "denied", "packages")
    assert err["packages"] == ["leftpad==1.0"] and "denies the package" in err["message"]
    assert err["findings"][0]["action"] == "block" and err["distributions"] == []
    not_allowed = run({"code": "print(1)", "packages": [TABULATE]}, strict_token)
    assert not_allowed.status_code == 403
    assert "does not allow packages" in not_allowed.json()["error"]["message"]

    # cannot be resolved: 422 naming `packages`, one sentence
    unknown = run({"code": "print(1)", "packages": [UNKNOWN]})
    assert unknown.status_code == 422
    err = unknown.json()["error"]
    assert (err["field"], err["kind"]) == ("packages", "unknown_package")
    assert "\n" not in err["message"] and UNKNOWN in err["message"]
    bad_spec = run({"code": "print(1)", "packages": ["--index-url=http://127.0.0.1:9/"]})
    assert bad_spec.status_code == 422 and bad_spec.json()["error"]["field"] == "packages"

    # the caps: no unbounded work on the host
    many = run({"code": "print(1)", "packages": [f"p{i}" for i in range(17)]})
    assert many.status_code == 422 and many.json()["error"]["field"] == "packages"
    long = run({"code": "print(1)", "packages": ["a" * 201]})
    assert long.status_code == 422 and long.json()["error"]["field"].startswith("packages")

    # images: unknown, not permitted, not built
    gpu = run({"code": "print(1)", "image": "gpu"})
    assert gpu.status_code == 422
    assert (gpu.json()["error"]["field"], gpu.json()["error"]["kind"]) == ("image", "unknown_image")
    forbidden = run({"code": "print(1)", "image": "data"}, strict_token)
    assert forbidden.status_code == 422
    assert forbidden.json()["error"]["kind"] == "image_not_permitted"
    unbuilt = run({"code": "print(1)", "image": "reports"})
    assert unbuilt.status_code == 503
    err = unbuilt.json()["error"]
    assert (err["code"], err["field"]) == ("image_unavailable", "image")
    assert "cellblock image build --profile reports" in err["message"]
    base = run({"code": "print(2)", "image": "base"})
    assert base.status_code == 200 and base.json()["stdout"] == "2\n"

    # a review-level package verdict: no person on this path, so not approved (200, the verdict)
    review = run({"code": "print(1)", "packages": [VULNERABLE]})
    assert review.status_code == 200, review.text
    data = review.json()
    assert data["status"] == "not_approved" and data["packages"]["action"] == "review"
    assert any(f["kind"] == "vulnerability" for f in data["packages"]["findings"])

    records = audit_records(svc_env)
    resolved = [r["payload"] for r in records if r["type"] == "packages.resolved"]
    assert resolved and all(p["caller"]["token_id"] == token_id for p in resolved)
    refused = [r["payload"] for r in records if r["type"] == "packages.refused"]
    assert {p["kind"] for p in refused} >= {"DeniedPackageError", "UnknownPackageError"}
    started = [r for r in records if r["type"] == "execution.started"]
    assert len(started) == 2  # the tabulate run and the base-image run only


def _stdio(env: dict[str, str], log: Path, fn: Any, elicitation: Any = None) -> Any:
    async def go() -> Any:
        params = StdioServerParameters(
            command=CELLBLOCK, args=["mcp", "--policy", PACKAGES_POLICY, "--no-warm"], env=env
        )
        with open(log, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, elicitation_callback=elicitation) as session,
            ):
                await session.initialize()
                return await fn(session)

    result = asyncio.run(go())
    assert "Traceback" not in log.read_text()
    return result


def test_mcp_stdio_packages_and_images(svc_env, tmp_path) -> None:
    callback = approve(True)

    async def scenario(session: ClientSession) -> dict[str, Any]:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        policy = await session.read_resource("cellblock://policy")
        call = session.call_tool
        ok = await call("run_python", {"code": TABLE, "packages": [TABULATE]})
        denied = await call("run_python", {"code": "print(1)", "packages": ["leftpad==1.0"]})
        unknown = await call("run_python", {"code": "print(1)", "packages": [UNKNOWN]})
        many = await call("run_python", {"code": "print(1)", "packages": ["x"] * 17})
        gpu = await call("run_python", {"code": "print(1)", "image": "gpu"})
        reviewed = await call("run_python", {"code": "print(3)", "packages": [VULNERABLE]})
        return locals()

    out = _stdio(svc_env, tmp_path / "mcp.log", scenario, callback)
    schema = out["tools"]["run_python"].inputSchema["properties"]
    assert schema["packages"]["maxItems"] == 16 and "tabulate" in schema["packages"]["description"]
    # stdio has one policy: the schema lists exactly the images it permits, read from it
    assert "'reports'" in schema["image"]["description"]
    assert "never built" in schema["image"]["description"]
    images = {i["name"] for i in json.loads(out["policy"].contents[0].text)["images"]}
    assert images == {"base", "data", "reports"}

    ok = out["ok"]
    assert not ok.isError and ok.structuredContent["stdout"] == "k\n", ok.structuredContent
    assert ok.structuredContent["packages"]["distributions"] == [
        {"name": "tabulate", "version": "0.10.0"}
    ]

    denied = out["denied"]
    reason = denied.structuredContent["reason"]
    assert denied.isError and (reason["code"], reason["kind"]) == ("packages_refused", "denied")
    assert reason["field"] == "packages" and reason["findings"]

    reason = out["unknown"].structuredContent["reason"]
    assert out["unknown"].isError
    assert (reason["code"], reason["field"], reason["kind"]) == (
        "invalid_input",
        "packages",
        "unknown_package",
    )
    reason = out["many"].structuredContent["reason"]
    assert (reason["field"], reason["kind"]) == ("packages", "too_many")
    reason = out["gpu"].structuredContent["reason"]
    assert (reason["field"], reason["kind"]) == ("image", "unknown_image")

    # a review-level package verdict goes through elicitation like review-level code
    reviewed = out["reviewed"].structuredContent
    assert reviewed["status"] == "ok" and reviewed["stdout"] == "3\n", reviewed
    assert reviewed["packages"]["action"] == "review"
    assert callback.asked and "ecdsa" in callback.asked[0]  # type: ignore[attr-defined]

    runs = [r for r in audit_records(svc_env) if r["type"] == "packages.resolved"]
    assert runs and all(r["payload"]["caller"]["via"] == "mcp-stdio" for r in runs)


def test_http_run_on_the_data_image(svc_env, start_server, docker_client) -> None:
    from cellblock.sandbox.profiles import DATA, inspect_profile_image

    info = inspect_profile_image(docker_client, DATA)
    if not (info.present and info.current):
        pytest.skip(
            "the data image is not built on this engine (cellblock image build --profile data)"
        )
    token, _ = make_token(svc_env, policy=PACKAGES_POLICY)
    server = start_server("serve")
    r = httpx.post(
        server.url + "/v1/run",
        json={"code": "import numpy as np, pandas\nprint(np.arange(5).sum())", "image": "data"},
        headers=bearer(token),
        timeout=300,
    )
    no_traceback(r)
    data = r.json()
    assert r.status_code == 200 and data["status"] == "ok", data
    assert data["stdout"] == "10\n" and data["image"] == "data"
    assert data["assessment"]["missing_dependencies"] == []


def test_a_refusal_from_a_verdict_carries_its_findings_and_distributions() -> None:
    """A vulnerable (block) refusal answers with every finding and what was resolved."""
    from cellblock.packages import (
        Distribution,
        PackageRules,
        Resolution,
        ScanReport,
        Target,
        Vulnerability,
        check,
        refusal,
    )
    from cellblock.service._packages import translate
    from cellblock.service.interface import PackagesRefusedError

    wheel = "ecdsa-0.19.2-py2.py3-none-any.whl"
    dist = Distribution("ecdsa", "0.19.2", wheel, "0" * 64, 1000, Path("/nonexistent"), True)
    resolution = Resolution((VULNERABLE,), (dist,), Target(), "index")
    scan = ScanReport("test", True, (Vulnerability("GHSA-test", "ecdsa", "0.19.2"),))
    error = refusal(check(resolution, scan, PackageRules(allowed=True)))
    assert error is not None
    answer = translate(error, [VULNERABLE])
    assert isinstance(answer, PackagesRefusedError) and answer.kind == "vulnerable"
    details = answer.details()
    assert details["findings"][0]["kind"] == "vulnerability"
    assert details["distributions"][0]["name"] == "ecdsa" and details["packages"] == [VULNERABLE]
