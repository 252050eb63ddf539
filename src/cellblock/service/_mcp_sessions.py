"""The MCP session tools: open, run a step, upload, download, list files, list, close.

A session is private to the caller that opened it (token id, or the local user over stdio):
another caller's id answers like an unknown one. Steps are assessed, decided and recorded like
runs; review-level steps ask the person through elicitation, as run_python does.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from cellblock.errors import CellblockError
from cellblock.pipeline import Approval, ReviewRequest
from cellblock.sandbox.errors import InvalidLimitsError, SourceDecodeError
from cellblock.sandbox.files import Artifact, FileError
from cellblock.service._core import ServiceCore
from cellblock.service._mcp import (
    FILES_DESCRIPTION,
    IMAGE_TYPES,
    FileBytes,
    _ask_person,
    _tool_error,
    decode_files,
)
from cellblock.service._sessions import MAX_IDLE_S, MAX_LIFETIME_S, SessionNotFoundError
from cellblock.service.interface import (
    Identity,
    ImageUnavailableError,
    QuotaExceededError,
    RequestFieldError,
    ServiceError,
)
from cellblock.session import SessionClosedError
from cellblock.session.interface import SessionLimitsError, StepResult

SESSION_ID = Annotated[str, Field(description="The id session_open returned.", max_length=64)]

OPEN_DESCRIPTION = f"""\
Open a Python session: one sandbox whose interpreter keeps variables and imports between steps
(like a notebook kernel). Use it to work in steps (load a file, look at it, compute, draw a
chart). It counts against your concurrent-runs quota until you close it; it ends by itself
after `idle_timeout_s` without a step (at most {MAX_IDLE_S:g}) or `max_lifetime_s` (at most
{MAX_LIFETIME_S:g}). Close it with session_close when done. Returns the session_id."""

STEP_DESCRIPTION = """\
Run one step of Python in an open session. Variables from earlier steps are still there. Returns
status (ok, error, exit, interrupted, timeout, blocked, not_approved...), stdout, stderr, the
value of the last expression (as a REPL shows it), and matplotlib figures the step drew as
images. A blocked step does not end the session: revise the code (see `reason`) and try again.
If `session_ended` is set, the session is gone: open a new one."""


def _artifact_meta(a: Artifact) -> dict[str, Any]:
    return {"name": a.name, "media_type": a.media_type, "size": a.size, "sha256": a.sha256}


def _images(artifacts: tuple[Artifact, ...]) -> list[ContentBlock]:
    return [
        ImageContent(type="image", data=base64.b64encode(a.data).decode(), mimeType=a.media_type)
        for a in artifacts
        if a.media_type in IMAGE_TYPES and a.data
    ]


def step_summary(result: StepResult, session_id: str) -> dict[str, Any]:
    assessment = result.assessment or {}
    return {
        "session_id": session_id,
        "step": result.step,
        "status": result.status,
        "ran": result.ran,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "stdout_truncated": result.stdout_truncated,
        "stderr_truncated": result.stderr_truncated,
        "value": result.value,
        "value_truncated": result.value_truncated,
        "exit_code": result.exit_code,
        "duration_s": result.duration_s,
        "session_ended": result.session_ended,
        "reason": result.reason,
        "level": assessment.get("level"),
        "findings": [
            {k: f.get(k) for k in ("rule_id", "tool", "severity", "line", "message")}
            for f in assessment.get("findings", [])
        ],
        "decision": result.decision,
        "artifacts": [_artifact_meta(a) for a in result.artifacts],
        "run_id": result.run_id,
    }


def _step_text(data: dict[str, Any]) -> str:
    parts = [f"step {data['step']}: {data['status']}"]
    if data["reason"]:
        parts[0] += f" ({data['reason']})"
    parts += [
        f"  line {f['line']}: {f['rule_id']} ({f['severity']}) {f['message']}"
        for f in (data["findings"] if not data["ran"] else [])
    ]
    if data["stdout"]:
        parts.append(f"stdout:\n{data['stdout']}")
    if data["stderr"]:
        parts.append(f"stderr:\n{data['stderr']}")
    if data["value"] is not None:
        parts.append(f"value: {data['value']}")
    if data["session_ended"]:
        parts.append(f"the session has ended ({data['session_ended']}); open a new one")
    return "\n".join(parts)


async def _guarded(call: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """Every failure as a structured tool error, never a traceback."""
    try:
        return await call()
    except SessionNotFoundError as exc:
        return _tool_error("not_found", str(exc), field="session_id")
    except RequestFieldError as exc:
        return _tool_error("invalid_input", str(exc), field=exc.field, kind=exc.kind)
    except (InvalidLimitsError, SourceDecodeError, SessionLimitsError, FileError) as exc:
        return _tool_error("invalid_input", str(exc))
    except ImageUnavailableError as exc:
        return _tool_error("image_unavailable", str(exc), field="image")
    except QuotaExceededError as exc:
        return _tool_error("quota_exceeded", str(exc), retry_after_s=exc.retry_after_s)
    except SessionClosedError as exc:
        return _tool_error("session_ended", str(exc), field="session_id")
    except (ServiceError, CellblockError) as exc:
        return _tool_error("unavailable", str(exc))


def _ok(text: str, data: dict[str, Any], extra: list[ContentBlock] | None = None) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(type="text", text=text), *(extra or [])]
    return CallToolResult(content=content, structuredContent=data, isError=False)


def add_session_tools(
    server: FastMCP[Any],
    core: ServiceCore,
    identity_of: Callable[[Context[Any, Any, Any]], Identity],
) -> None:
    sessions = core.sessions
    tool = ToolAnnotations

    @server.tool(
        name="session_open",
        description=OPEN_DESCRIPTION,
        annotations=tool(title="Open a Python session", openWorldHint=False),
    )
    async def session_open(
        ctx: Context[Any, Any, Any],
        image: Annotated[
            str | None,
            Field(
                description="An image profile the policy permits (e.g. 'data' for pandas, "
                "numpy, matplotlib); the policy's default when omitted.",
                max_length=64,
            ),
        ] = None,
        idle_timeout_s: Annotated[float | None, Field(ge=1, le=MAX_IDLE_S)] = None,
        max_lifetime_s: Annotated[float | None, Field(ge=1, le=MAX_LIFETIME_S)] = None,
        step_timeout_s: Annotated[
            float | None, Field(ge=0.1, le=3600, description="Default limit of each step.")
        ] = None,
    ) -> CallToolResult:
        identity = identity_of(ctx)

        async def call() -> CallToolResult:
            data = await asyncio.to_thread(
                sessions.open,
                identity,
                image=image,
                idle_timeout_s=idle_timeout_s,
                max_lifetime_s=max_lifetime_s,
                step_timeout_s=step_timeout_s,
            )
            return _ok(f"session_id: {data['session_id']} (image {data['image']})", data)

        return await _guarded(call)

    @server.tool(
        name="session_run",
        description=STEP_DESCRIPTION,
        annotations=tool(title="Run a step in a session", openWorldHint=False),
    )
    async def session_run(
        ctx: Context[Any, Any, Any],
        session_id: SESSION_ID,
        code: Annotated[str, Field(description="Python 3 code for this step.")],
        timeout_s: Annotated[
            float | None, Field(ge=0.1, le=3600, description="Limit of this step in seconds.")
        ] = None,
    ) -> CallToolResult:
        identity = identity_of(ctx)
        loop = asyncio.get_running_loop()

        def approver(request: ReviewRequest) -> Approval:
            future = asyncio.run_coroutine_threadsafe(_ask_person(ctx, request, identity), loop)
            return future.result(timeout=600)

        async def call() -> CallToolResult:
            result = await asyncio.to_thread(
                sessions.step, identity, session_id, code, timeout_s=timeout_s, approver=approver
            )
            data = step_summary(result, session_id)
            return _ok(_step_text(data), data, _images(result.artifacts))

        return await _guarded(call)

    @server.tool(
        name="session_upload",
        description="Put files into an open session's working directory. " + FILES_DESCRIPTION,
        annotations=tool(title="Upload files to a session", openWorldHint=False),
    )
    async def session_upload(
        ctx: Context[Any, Any, Any],
        session_id: SESSION_ID,
        files: Annotated[dict[str, str | FileBytes], Field(description=FILES_DESCRIPTION)],
    ) -> CallToolResult:
        identity = identity_of(ctx)

        async def call() -> CallToolResult:
            inputs = decode_files(files) or {}
            got = await asyncio.to_thread(sessions.upload, identity, session_id, inputs)
            text = "uploaded: " + ", ".join(f"{f['name']} ({f['size']} bytes)" for f in got)
            return _ok(text, {"session_id": session_id, "files": got})

        return await _guarded(call)

    @server.tool(
        name="session_download",
        description="Bring back files from an open session's working directory by glob "
        "pattern (relative, e.g. '*.csv' or 'out/*'). Images come back as images; every file "
        "as base64 with its name, size and sha256.",
        annotations=tool(
            title="Download files from a session", readOnlyHint=True, openWorldHint=False
        ),
    )
    async def session_download(
        ctx: Context[Any, Any, Any],
        session_id: SESSION_ID,
        patterns: Annotated[list[str], Field(min_length=1, max_length=32)],
    ) -> CallToolResult:
        identity = identity_of(ctx)

        async def call() -> CallToolResult:
            got = await asyncio.to_thread(sessions.download, identity, session_id, patterns)
            data = {
                "session_id": session_id,
                "files": [
                    {**_artifact_meta(a), "data_base64": base64.b64encode(a.data).decode()}
                    for a in got.artifacts
                ],
                "refused": [r.to_dict() for r in got.refused],
            }
            text = f"{len(got.artifacts)} file(s): " + ", ".join(a.name for a in got.artifacts)
            return _ok(text, data, _images(got.artifacts))

        return await _guarded(call)

    @server.tool(
        name="session_files",
        description="List an open session's working directory (name, size, kind).",
        annotations=tool(title="List a session's files", readOnlyHint=True, openWorldHint=False),
    )
    async def session_files(ctx: Context[Any, Any, Any], session_id: SESSION_ID) -> CallToolResult:
        identity = identity_of(ctx)

        async def call() -> CallToolResult:
            entries = await asyncio.to_thread(sessions.files, identity, session_id)
            text = "\n".join(f"{e['kind']:7} {e['size']:>10} {e['name']}" for e in entries)
            return _ok(text or "(empty)", {"session_id": session_id, "files": entries})

        return await _guarded(call)

    @server.tool(
        name="session_list",
        description="Your open sessions (id, image, age, limits).",
        annotations=tool(title="List your sessions", readOnlyHint=True, openWorldHint=False),
    )
    async def session_list(ctx: Context[Any, Any, Any]) -> CallToolResult:
        identity = identity_of(ctx)

        async def call() -> CallToolResult:
            found = await asyncio.to_thread(sessions.list_sessions, identity)
            text = "\n".join(f"{s['session_id']} {s['image']} {s['age_s']:.0f}s" for s in found)
            return _ok(text or "(no open sessions)", {"sessions": found})

        return await _guarded(call)

    @server.tool(
        name="session_close",
        description="Close a session: its sandbox and everything in it are destroyed.",
        annotations=tool(title="Close a session", destructiveHint=True, openWorldHint=False),
    )
    async def session_close(ctx: Context[Any, Any, Any], session_id: SESSION_ID) -> CallToolResult:
        identity = identity_of(ctx)

        async def call() -> CallToolResult:
            data = await asyncio.to_thread(sessions.close, identity, session_id)
            return _ok(f"closed {session_id}", data)

        return await _guarded(call)
