"""The HTTP API (FastAPI): run and assess Python, the policy in force, health, metrics, cells.

JSON in and out. A run answers 200 with ``PipelineResult.to_dict()`` plus ``caller`` whatever the
program did (blocked and not-approved runs included: the decision is the answer). Errors are
``{"error": {"code", "message"[, "field"]}}``: 401 token, 403 packages the policy refuses (with
the findings), 413 body, 422 input (field named), 429 quota (with ``Retry-After``), 503 draining
or an image not built; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cellblock import __version__
from cellblock.errors import CellblockError
from cellblock.sandbox.errors import InvalidLimitsError, SourceDecodeError
from cellblock.service._core import ServiceCore
from cellblock.service._guard import TokenGate
from cellblock.service._metrics import CONTENT_TYPE
from cellblock.service._monitor import live_cells
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
    ShuttingDownError,
    TokenStore,
    extensions,
)

log = logging.getLogger("cellblock.service")
# documents the bearer scheme in the OpenAPI document; the TokenGate does the checking
_bearer = [
    Depends(HTTPBearer(auto_error=False, description="a token from `cellblock token create`"))
]


class RunBody(BaseModel):
    """A program to assess, decide on, run and record under the token's policy."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="Python source to run.", max_length=64 * 1024 * 1024)
    stdin: str | None = Field(default=None, description="Text given to the program's stdin.")
    timeout_s: float | None = Field(
        default=None,
        ge=0.1,
        le=24 * 3600,
        description="Wall-clock limit in seconds; can only tighten the policy's limit.",
    )
    packages: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_SPEC_CHARS)]] | None
    ) = Field(
        default=None,
        max_length=MAX_PACKAGES,
        description="Extra pure-Python packages the program imports, as requirement specifiers "
        "('tabulate==0.10.0'; pin versions). The host resolves wheels, scans them for known "
        "vulnerabilities and checks them against the policy before anything runs; the sandbox "
        "still has no network. A refusal is 403 `packages_refused` (kind, findings); a package "
        "that cannot be resolved is 422 naming `packages`.",
        examples=[["tabulate==0.10.0"]],
    )
    image: str | None = Field(
        default=None,
        max_length=64,
        description=describe_images(None)
        + " An image not permitted or unknown is 422 naming `image`; one not built on this "
        "server is 503 `image_unavailable`.",
    )


class AssessBody(BaseModel):
    """A program to assess (nothing runs)."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="Python source to assess.", max_length=64 * 1024 * 1024)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}},
        status_code=status,
        headers=headers,
    )


def _identity(request: Request) -> Identity:
    identity = request.scope.get("state", {}).get("identity")
    if not isinstance(identity, Identity):  # only the gate sets it; never from a header
        raise RuntimeError("route reached without the token gate")
    return identity


def create_app(core: ServiceCore, store: TokenStore, *, grace_s: float = 30.0) -> Any:
    """The ASGI application: FastAPI wrapped in the token gate."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # SIGTERM: uvicorn stopped accepting and waited for requests; finish or kill the rest
        record = await asyncio.to_thread(core.shutdown, grace_s)
        log.warning("cellblock serve: shut down (%s)", record)

    app = FastAPI(
        title="cellblock",
        version=__version__,
        description="Run untrusted Python in hardened single-use containers, "
        "assessed, decided by policy and recorded in a signed audit log.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        message = f"field '{field}': {first.get('msg', 'is not valid')}"
        return _error(422, "invalid_input", message, field=field)

    @app.exception_handler(QuotaExceededError)
    async def over_quota(_request: Request, exc: QuotaExceededError) -> JSONResponse:
        core.metrics.rejections.labels(code="429").inc()
        return _error(
            429,
            "quota_exceeded",
            str(exc),
            quota=exc.quota,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(RequestFieldError)
    async def bad_field(_request: Request, exc: RequestFieldError) -> JSONResponse:
        return _error(422, "invalid_input", str(exc), field=exc.field, kind=exc.kind)

    @app.exception_handler(PackagesRefusedError)
    async def refused(_request: Request, exc: PackagesRefusedError) -> JSONResponse:
        return _error(403, "packages_refused", str(exc), **exc.details())

    @app.exception_handler(ImageUnavailableError)
    async def no_image(_request: Request, exc: ImageUnavailableError) -> JSONResponse:
        return _error(503, "image_unavailable", str(exc), field="image")

    @app.exception_handler(ShuttingDownError)
    async def draining(_request: Request, exc: ShuttingDownError) -> JSONResponse:
        return _error(503, "shutting_down", str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(InvalidLimitsError)
    async def bad_limit(_request: Request, exc: InvalidLimitsError) -> JSONResponse:
        field = {"timeout_s": "timeout_s"}.get(exc.field, exc.field)
        return _error(422, "invalid_input", f"field '{field}': {exc}", field=field)

    @app.exception_handler(SourceDecodeError)
    async def bad_source(_request: Request, exc: SourceDecodeError) -> JSONResponse:
        return _error(422, "invalid_input", f"field 'code': {exc}", field="code")

    @app.exception_handler(CellblockError)
    async def cellblock_error(_request: Request, exc: CellblockError) -> JSONResponse:
        log.warning("cellblock serve: %s: %s", type(exc).__name__, exc)
        return _error(503, "unavailable", str(exc))

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("cellblock serve: internal error")
        return _error(500, "internal", "internal error; the server log has the details")

    @app.get("/healthz", summary="Liveness: 200 while serving, 503 while draining")
    async def healthz() -> JSONResponse:
        status = 503 if core.draining else 200
        return JSONResponse(
            {
                "status": "draining" if core.draining else "ok",
                "version": __version__,
                "in_flight": len(core.in_flight()),
            },
            status_code=status,
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body = await asyncio.to_thread(core.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    @app.post(
        "/v1/run", dependencies=_bearer, summary="Assess, decide, run and record a Python program"
    )
    async def run(body: RunBody, request: Request, response: Response) -> dict[str, Any]:
        identity = _identity(request)
        started = time.perf_counter()
        with core.quotas.slot(identity.subject, identity.quotas):
            _request_id, future = core.submit(
                identity,
                body.code,
                stdin=None if body.stdin is None else body.stdin.encode(),
                timeout_s=body.timeout_s,
                image=body.image,
                packages=body.packages,
            )
            try:
                result = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                # past the grace period on shutdown: the cell is killed and the end recorded
                raise ShuttingDownError(
                    "the server shut down before this run finished; the run was stopped "
                    "and recorded"
                ) from None
        # time spent in the pipeline itself, so a client can tell the HTTP path's own cost
        pipeline_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"pipeline;dur={pipeline_ms:.3f}"
        data = result.to_dict()
        data["caller"] = identity.to_audit()
        return data

    @app.post(
        "/v1/assess",
        dependencies=_bearer,
        summary="Assess a Python program and say what the policy would decide",
    )
    async def assess(body: AssessBody, request: Request) -> dict[str, Any]:
        identity = _identity(request)
        return await asyncio.to_thread(core.assess, identity, body.code)

    @app.get(
        "/v1/policy", dependencies=_bearer, summary="The policy bound to this token, and its quotas"
    )
    async def policy(request: Request) -> dict[str, Any]:
        identity = _identity(request)
        loaded = core.loaded_policy(identity.policy)
        return {
            "policy": loaded.policy.to_dict(),
            "digest": loaded.policy.digest(),
            "origin": loaded.to_dict(),
            "quotas": identity.quotas.to_dict(),
            "caller": identity.to_audit(),
            "images": image_catalogue(loaded.policy),
            "packages_limits": {"max_packages": MAX_PACKAGES, "max_spec_chars": MAX_SPEC_CHARS},
        }

    @app.get(
        "/v1/cells", dependencies=_bearer, summary="This server's live cells and runs in flight"
    )
    async def cells(request: Request) -> dict[str, Any]:
        identity = _identity(request)
        found = await asyncio.to_thread(live_cells, core.backend, owned_by_me=True, sample_s=0.2)
        # cells carry no caller; runs do, and a caller sees only its own
        return {
            "cells": [c.to_dict() for c in found],
            "runs": core.in_flight(identity.subject),
            "at": time.time(),
        }

    from cellblock.service._http_sessions import add_session_routes

    add_session_routes(app, core, _identity, _bearer)

    for extension in extensions():
        if extension.http is not None:
            extension.http(app, core)

    return TokenGate(
        app,
        store=store,
        via="http",
        protected=("/v1/",),
        on_refusal=lambda status: core.metrics.rejections.labels(code=str(status)).inc(),
    )
