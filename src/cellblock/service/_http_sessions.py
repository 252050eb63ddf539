"""The HTTP session routes: ``/v1/sessions`` (open, list), ``/v1/sessions/{id}`` (close), its
steps and files. A session is private to the token that opened it: another token's session id
is 404, exactly as an unknown one. 401/413/422/429 as for runs."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cellblock.sandbox.files import FileError
from cellblock.service._core import ServiceCore
from cellblock.service._sessions import MAX_IDLE_S, MAX_LIFETIME_S, SessionNotFoundError
from cellblock.service.interface import Identity, RequestFieldError
from cellblock.session import SessionClosedError
from cellblock.session.interface import SessionLimitsError


class SessionOpenBody(BaseModel):
    """A session to open under the token's policy."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(
        default=None, max_length=64, description="An image profile the policy permits."
    )
    idle_timeout_s: float | None = Field(
        default=None, ge=1, le=MAX_IDLE_S, description="End the session after this idle time."
    )
    max_lifetime_s: float | None = Field(
        default=None, ge=1, le=MAX_LIFETIME_S, description="End the session after this long."
    )
    step_timeout_s: float | None = Field(
        default=None, ge=0.1, le=24 * 3600, description="Default limit of each step."
    )


class StepBody(BaseModel):
    """One step of Python in the session's persistent interpreter."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="Python source of this step.", max_length=64 * 1024 * 1024)
    timeout_s: float | None = Field(default=None, ge=0.1, le=24 * 3600)


class FileContent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base64: str | None = Field(default=None, description="The bytes, base64-encoded.")
    text: str | None = Field(default=None, description="The content as text (UTF-8).")


class UploadBody(BaseModel):
    """Files to place in the session's working directory: relative name -> content."""

    model_config = ConfigDict(extra="forbid")
    files: dict[Annotated[str, StringConstraints(min_length=1, max_length=1024)], FileContent]


class DownloadBody(BaseModel):
    """Glob patterns (relative to the working directory) of files to bring back."""

    model_config = ConfigDict(extra="forbid")
    patterns: list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]] = Field(
        min_length=1, max_length=32, examples=[["*.csv", "out/*"]]
    )


def _decode(files: dict[str, FileContent]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, content in files.items():
        if (content.base64 is None) == (content.text is None):
            raise RequestFieldError(
                f"field 'files': give {name!r} either 'base64' or 'text'",
                field="files",
                kind="invalid",
            )
        if content.text is not None:
            out[name] = content.text.encode("utf-8", "surrogateescape")
            continue
        try:
            out[name] = base64.b64decode(content.base64 or "", validate=True)
        except ValueError:
            raise RequestFieldError(
                f"field 'files': the content of {name!r} is not valid base64",
                field="files",
                kind="invalid",
            ) from None
    return out


def add_session_routes(app: FastAPI, core: ServiceCore, identity_of: Any, bearer: Any) -> None:
    sessions = core.sessions

    def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": code, "message": message, **extra}}, status_code=status
        )

    @app.exception_handler(SessionNotFoundError)
    async def not_found(_request: Request, exc: SessionNotFoundError) -> JSONResponse:
        return error(404, "not_found", str(exc), field="session_id")

    @app.exception_handler(SessionClosedError)
    async def ended(_request: Request, exc: SessionClosedError) -> JSONResponse:
        return error(404, "session_ended", str(exc), field="session_id")

    @app.exception_handler(FileError)
    async def bad_file(_request: Request, exc: FileError) -> JSONResponse:
        return error(422, "invalid_input", f"field 'files': {exc}", field="files")

    @app.exception_handler(SessionLimitsError)
    async def bad_limits(_request: Request, exc: SessionLimitsError) -> JSONResponse:
        return error(422, "invalid_input", str(exc), field="body")

    @app.post(
        "/v1/sessions",
        dependencies=bearer,
        status_code=201,
        summary="Open a session: one sandbox with a persistent interpreter, private to this "
        "token and counted against its max_concurrent quota until closed",
    )
    async def open_session(body: SessionOpenBody, request: Request) -> dict[str, Any]:
        identity: Identity = identity_of(request)
        return await asyncio.to_thread(
            sessions.open,
            identity,
            image=body.image,
            idle_timeout_s=body.idle_timeout_s,
            max_lifetime_s=body.max_lifetime_s,
            step_timeout_s=body.step_timeout_s,
        )

    @app.get("/v1/sessions", dependencies=bearer, summary="This token's open sessions")
    async def list_sessions(request: Request) -> dict[str, Any]:
        found = await asyncio.to_thread(sessions.list_sessions, identity_of(request))
        return {"sessions": found}

    @app.post(
        "/v1/sessions/{session_id}/steps",
        dependencies=bearer,
        summary="Assess, decide, run and record one step in the session (variables persist); "
        "the answer has status, stdout, stderr, the last expression's value and figures",
    )
    async def step(session_id: str, body: StepBody, request: Request) -> dict[str, Any]:
        identity: Identity = identity_of(request)
        result = await asyncio.to_thread(
            sessions.step, identity, session_id, body.code, timeout_s=body.timeout_s
        )
        data = result.to_dict()
        data["session_id"] = session_id
        return data

    @app.post(
        "/v1/sessions/{session_id}/files",
        dependencies=bearer,
        summary="Upload files into the session's working directory",
    )
    async def upload(session_id: str, body: UploadBody, request: Request) -> dict[str, Any]:
        identity: Identity = identity_of(request)
        got = await asyncio.to_thread(sessions.upload, identity, session_id, _decode(body.files))
        return {"session_id": session_id, "files": got}

    @app.get(
        "/v1/sessions/{session_id}/files",
        dependencies=bearer,
        summary="List the session's working directory",
    )
    async def list_files(session_id: str, request: Request) -> dict[str, Any]:
        entries = await asyncio.to_thread(sessions.files, identity_of(request), session_id)
        return {"session_id": session_id, "files": entries}

    @app.post(
        "/v1/sessions/{session_id}/files/download",
        dependencies=bearer,
        summary="Bring back files matching glob patterns (base64, name, size, sha256)",
    )
    async def download(session_id: str, body: DownloadBody, request: Request) -> dict[str, Any]:
        identity: Identity = identity_of(request)
        got = await asyncio.to_thread(sessions.download, identity, session_id, body.patterns)
        return {"session_id": session_id, **got.to_dict()}

    @app.delete(
        "/v1/sessions/{session_id}",
        dependencies=bearer,
        summary="Close the session; its container and files are destroyed",
    )
    async def close(session_id: str, request: Request) -> dict[str, Any]:
        return await asyncio.to_thread(sessions.close, identity_of(request), session_id)
