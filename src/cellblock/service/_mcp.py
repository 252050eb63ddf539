"""The MCP server (official ``mcp`` SDK, FastMCP): tools to run and assess Python, the policy.

Transports: stdio (a local client starts ``cellblock mcp``; the caller is the local user and the
policy is the one given on the command line) and streamable HTTP (``cellblock mcp --http``; every
request carries a bearer token, which sets the caller, its policy and its quotas, exactly as for
the HTTP API).

A run that does not happen comes back as a structured reason the agent can act on: the level, the
findings with line numbers, and the decision. Review-level code asks the person through MCP
elicitation when the client supports it; otherwise it is refused with that reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import (
    CallToolResult,
    ClientCapabilities,
    ContentBlock,
    ElicitationCapability,
    ImageContent,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field

from cellblock.pipeline import Approval, PipelineResult, ReviewRequest
from cellblock.sandbox.errors import InvalidLimitsError, SourceDecodeError
from cellblock.service._core import ServiceCore
from cellblock.service._packages import (
    MAX_PACKAGES,
    MAX_SPEC_CHARS,
    describe_images,
    image_catalogue,
)
from cellblock.service.interface import (
    Identity,
    ImageUnavailableError,
    PackagesRefusedError,
    QuotaExceededError,
    RequestFieldError,
    ServiceError,
    extensions,
)

INSTRUCTIONS = """\
cellblock runs Python you write in a hardened, single-use sandbox with no network. Every program
is first assessed (static analysis) and a policy decides: allow, restrict, review (a person must
approve) or block. If a run is blocked or not approved, the result says why (level, findings with
line numbers): revise the code to avoid the flagged constructs and try again. Use assess_python
to check code without running it. Read the resource cellblock://policy for the limits in force.
"""

RUN_DESCRIPTION = """\
Run a Python 3 program in an isolated sandbox (no network, read-only filesystem except /tmp and
the working directory, CPU/memory/time limits) and return its status, exit code, stdout and
stderr. Print what you need to see. Give input files in `files`; image files (PNG, JPEG, GIF,
WebP) the program leaves in its working directory come back as images, so save a chart with
`plt.savefig("chart.png")` (matplotlib is on the `data` image). The program is assessed first;
if the policy blocks it or a person declines it, nothing runs and `reason` explains why (level,
findings with line numbers, decision) so you can revise the code. Third-party libraries: pick
an `image` that holds them, or ask for small pure-Python ones in `packages` (resolved and
scanned on the host, checked against the policy; a refusal says why, with the package
findings)."""

PACKAGES_DESCRIPTION = (
    "Extra pure-Python packages the program imports, as requirement specifiers "
    f"('tabulate==0.10.0'; pin versions; at most {MAX_PACKAGES}, each at most {MAX_SPEC_CHARS} "
    "characters). Prefer an image that already holds what you need."
)

ASSESS_DESCRIPTION = """\
Assess a Python 3 program without running it: the risk level (none, low, medium, high,
critical), the findings (rule, line, message) and what the policy would decide
(allow, restrict, review or block)."""


class ReviewAnswer(BaseModel):
    """What the person answers when asked to approve a program."""

    approve: bool = Field(description="Run this program?")
    reason: str = Field(default="", description="Why (optional)")


# The hook for rich outputs: PNG, JPEG, GIF and WebP artifacts become MCP image content.
ArtifactRenderer = Callable[[PipelineResult], list[ContentBlock]]

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# images a one-shot program leaves in its working directory come back (matplotlib: savefig)
IMAGE_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.gif", "*.webp")


def render_image_artifacts(result: PipelineResult) -> list[ContentBlock]:
    blocks: list[ContentBlock] = []
    for artifact in getattr(result.execution, "artifacts", None) or ():
        if artifact.media_type in IMAGE_TYPES and artifact.data:
            data = base64.b64encode(artifact.data).decode("ascii")
            blocks.append(ImageContent(type="image", data=data, mimeType=artifact.media_type))
    return blocks


class FileBytes(BaseModel):
    """A binary input file."""

    base64: str = Field(description="The file's bytes, base64-encoded.")


FILES_DESCRIPTION = (
    "Files to place in the working directory before the program runs: relative name -> "
    'content, either text (written as UTF-8) or {"base64": "..."} for binary data. '
    "Their total size is capped by your request-size quota."
)


def decode_files(files: dict[str, str | FileBytes] | None) -> dict[str, bytes] | None:
    """Text or base64 contents to bytes; a RequestFieldError names a bad one."""
    if not files:
        return None
    out: dict[str, bytes] = {}
    for name, value in files.items():
        if isinstance(value, str):
            out[name] = value.encode("utf-8", "surrogateescape")
            continue
        try:
            out[name] = base64.b64decode(value.base64, validate=True)
        except (binascii.Error, ValueError):
            raise RequestFieldError(
                f"field 'files': the content of {name!r} is not valid base64; encode the "
                "bytes with standard base64, or give text",
                field="files",
                kind="invalid",
            ) from None
    return out


def _findings(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: f.get(k) for k in ("rule_id", "tool", "severity", "line", "message")}
        for f in data.get("findings", [])
    ]


def summarise(result: PipelineResult) -> dict[str, Any]:
    """The model-facing result: small, flat, and a machine-readable reason when nothing ran."""
    full = result.to_dict()
    out: dict[str, Any] = {
        "status": result.status,
        "ran": result.ran,
        "exit_code": full.get("exit_code"),
        "stdout": full.get("stdout", ""),
        "stderr": full.get("stderr", ""),
        "stdout_truncated": full.get("stdout_truncated", False),
        "stderr_truncated": full.get("stderr_truncated", False),
        "timed_out": full.get("timed_out", False),
        "duration_s": full.get("duration_s"),
        "run_id": result.run_id,
        "level": full["assessment"]["level"],
        "findings": _findings(full["assessment"]),
        "decision": full["decision"],
        "approval": full["approval"],
        "image": result.image,
        "packages": _packages_summary(full.get("packages")),
        "artifacts": [
            {k: a.get(k) for k in ("name", "media_type", "size", "sha256", "kind")}
            for a in full.get("artifacts") or ()
        ],
        "reason": None,
    }
    if not result.ran:
        out["reason"] = {
            "code": result.status,  # "blocked" or "not_approved"
            "message": (
                result.approval.reason
                if result.approval is not None and result.approval.reason
                else result.decision.reason
            ),
            "level": out["level"],
            "findings": out["findings"],
            "decision": result.decision.action,
        }
        if out["packages"] is not None:  # a package verdict may be what asked for review
            out["reason"]["packages"] = out["packages"]["findings"]
    return out


def _packages_summary(verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {
        "action": verdict["action"],
        "distributions": [
            {"name": d["name"], "version": d["version"]}
            for d in verdict["resolution"]["distributions"]
        ],
        "findings": verdict["findings"],
    }


def _text_summary(data: dict[str, Any]) -> str:
    if not data["ran"]:
        reason = data["reason"]
        lines = [f"NOT RUN ({reason['code']}): {reason['message']}"]
        lines += [
            f"  line {f['line']}: {f['rule_id']} ({f['severity']}) {f['message']}"
            for f in reason["findings"]
        ]
        lines += [f"  package: {f['message']} ({f['action']})" for f in reason.get("packages", [])]
        return "\n".join(lines)
    parts = [f"status: {data['status']} (exit code {data['exit_code']})"]
    if data["stdout"]:
        parts.append(f"stdout:\n{data['stdout']}")
    if data["stderr"]:
        parts.append(f"stderr:\n{data['stderr']}")
    return "\n".join(parts)


def _tool_error(code: str, message: str, **extra: Any) -> CallToolResult:
    data = {"status": "error", "ran": False, "reason": {"code": code, "message": message, **extra}}
    return CallToolResult(
        content=[TextContent(type="text", text=f"ERROR ({code}): {message}")],
        structuredContent=data,
        isError=True,
    )


def create_mcp(
    core: ServiceCore,
    identity_of: Callable[[Context[Any, Any, Any]], Identity],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    render_artifacts: ArtifactRenderer = render_image_artifacts,
    policy: str | None = None,
) -> FastMCP[Any]:
    """``policy``: the one policy every caller has (stdio), so the tool's schema can list
    exactly the images it permits; None (HTTP, a policy per token) lists the built-in ones."""
    images_text = describe_images(core.loaded_policy(policy).policy if policy else None)
    server: FastMCP[Any] = FastMCP(
        "cellblock", instructions=INSTRUCTIONS, host=host, port=port, log_level="WARNING"
    )

    async def run_python(
        ctx: Context[Any, Any, Any],
        code: Annotated[str, Field(description="The complete Python 3 program to run.")],
        timeout_s: Annotated[
            float | None,
            Field(
                ge=0.1,
                le=3600,
                description="Wall-clock limit in seconds (can only shorten the policy's limit).",
            ),
        ] = None,
        packages: Annotated[
            list[str] | None,
            # the caps are advertised here and checked by the core, which answers a structured
            # error (the SDK's own validation would answer plain text)
            Field(
                description=PACKAGES_DESCRIPTION,
                json_schema_extra={"maxItems": MAX_PACKAGES},
            ),
        ] = None,
        image: str | None = None,  # annotated below: its description is read from the policy
        files: Annotated[
            dict[str, str | FileBytes] | None, Field(description=FILES_DESCRIPTION)
        ] = None,
    ) -> CallToolResult:
        identity = identity_of(ctx)
        loop = asyncio.get_running_loop()

        def approver(request: ReviewRequest) -> Approval:
            # called from the run's worker thread: ask on the event loop and wait for the answer
            future = asyncio.run_coroutine_threadsafe(_ask_person(ctx, request, identity), loop)
            return future.result(timeout=600)

        try:
            inputs = decode_files(files)
            with core.quotas.slot(identity.subject, identity.quotas):
                _rid, future = core.submit(
                    identity,
                    code,
                    timeout_s=timeout_s,
                    approver=approver,
                    image=image,
                    packages=packages,
                    files=inputs,
                    collect=IMAGE_PATTERNS,
                )
                result = await asyncio.wrap_future(future)
        except (InvalidLimitsError, SourceDecodeError) as exc:
            return _tool_error("invalid_input", str(exc))
        except RequestFieldError as exc:
            return _tool_error("invalid_input", str(exc), field=exc.field, kind=exc.kind)
        except PackagesRefusedError as exc:
            return _tool_error("packages_refused", str(exc), **exc.details())
        except ImageUnavailableError as exc:
            return _tool_error("image_unavailable", str(exc), field="image")
        except QuotaExceededError as exc:
            return _tool_error("quota_exceeded", str(exc), retry_after_s=exc.retry_after_s)
        except ServiceError as exc:
            return _tool_error("unavailable", str(exc))
        data = summarise(result)
        content: list[ContentBlock] = [TextContent(type="text", text=_text_summary(data))]
        content += render_artifacts(result)
        return CallToolResult(content=content, structuredContent=data, isError=False)

    run_python.__annotations__["image"] = Annotated[str | None, Field(description=images_text)]
    server.tool(
        name="run_python",
        description=RUN_DESCRIPTION,
        annotations=ToolAnnotations(title="Run Python in a sandbox", openWorldHint=False),
    )(run_python)

    @server.tool(
        name="assess_python",
        description=ASSESS_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Assess Python without running it", readOnlyHint=True, openWorldHint=False
        ),
    )
    async def assess_python(
        ctx: Context[Any, Any, Any],
        code: Annotated[str, Field(description="The complete Python 3 program to assess.")],
    ) -> CallToolResult:
        identity = identity_of(ctx)
        report = await asyncio.to_thread(core.assess, identity, code)
        data = {
            "level": report["assessment"]["level"],
            "findings": _findings(report["assessment"]),
            "decision": report["decision"],
            "policy": report["policy"],
        }
        text = f"level: {data['level']}; decision: {data['decision']['action']}"
        text += "".join(
            f"\n  line {f['line']}: {f['rule_id']} ({f['severity']}) {f['message']}"
            for f in data["findings"]
        )
        return CallToolResult(content=[TextContent(type="text", text=text)], structuredContent=data)

    @server.resource(
        "cellblock://policy",
        name="policy",
        description="The policy in force for this caller (decisions, limits, hardening) "
        "and its quotas.",
        mime_type="application/json",
    )
    def policy_resource() -> str:
        identity = identity_of(server.get_context())
        loaded = core.loaded_policy(identity.policy)
        return json.dumps(
            {
                "policy": loaded.policy.to_dict(),
                "digest": loaded.policy.digest(),
                "quotas": identity.quotas.to_dict(),
                "images": image_catalogue(loaded.policy),
            },
            default=str,
        )

    from cellblock.service._mcp_sessions import add_session_tools

    add_session_tools(server, core, identity_of)

    for extension in extensions():
        if extension.mcp is not None:
            extension.mcp(server, core)
    return server


async def _ask_person(
    ctx: Context[Any, Any, Any], request: ReviewRequest, identity: Identity
) -> Approval:
    who = f"mcp-elicitation:{identity.subject}"
    wanted = ClientCapabilities(elicitation=ElicitationCapability())
    if not ctx.request_context.session.check_client_capability(wanted):
        return Approval(
            False,
            by="mcp",
            reason="the policy requires a person's approval (review) and this MCP client "
            "does not support elicitation; revise the code to avoid the findings",
        )
    findings = "".join(
        f"\n- line {f.line}: {f.rule_id} ({f.severity}) {f.message}"
        for f in (request.assessment.findings if request.assessment else ())
    )
    if request.packages is not None:
        wanted_pkgs = ", ".join(
            f"{d.name}=={d.version}" for d in request.packages.resolution.distributions
        )
        findings += f"\nPackages ({wanted_pkgs}): {request.packages.action}"
        findings += "".join(f"\n- {f.message} ({f.action})" for f in request.packages.findings)
    code = request.code if len(request.code) <= 4000 else request.code[:4000] + "\n..."
    message = (
        f"cellblock: this program needs your approval (level {request.decision.level}: "
        f"{request.decision.reason}).{findings}\n\n{code}"
    )
    try:
        answer = await ctx.elicit(message=message, schema=ReviewAnswer)
    except Exception as exc:  # a client that fails to answer says no
        return Approval(False, by=who, reason=f"the approval request failed: {exc}")
    if answer.action == "accept" and answer.data is not None:
        reason = answer.data.reason or ("approved" if answer.data.approve else "declined")
        return Approval(bool(answer.data.approve), by=who, reason=reason)
    return Approval(False, by=who, reason=f"the person chose '{answer.action}'")
