"""Process entry points: ``cellblock serve`` and ``cellblock mcp`` (uvicorn, or stdio)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from cellblock.service._core import ServiceCore, local_identity
from cellblock.service._guard import TokenGate
from cellblock.service._tokens import FileTokenStore
from cellblock.service.interface import Identity, ServiceError

MCP_STDIO_GRACE_S = 10.0


class _ClientHangupFilter(logging.Filter):
    """The SDK logs a client closing its standalone SSE stream as an error with a traceback;
    a client hanging up is normal, so that one record is dropped (every other error stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            record.getMessage().startswith("Error in standalone SSE writer")
            and type(exc).__name__ == "ClosedResourceError"
        )


class _DrainingServer(uvicorn.Server):
    """uvicorn, telling the core to refuse new runs the moment SIGTERM/SIGINT arrives."""

    def __init__(self, config: uvicorn.Config, core: ServiceCore) -> None:
        super().__init__(config)
        self.core = core

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.core.begin_drain()
        super().handle_exit(sig, frame)


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _core(args: argparse.Namespace, **kwargs: Any) -> ServiceCore:
    return ServiceCore(
        audit_dir=Path(args.audit_dir) if args.audit_dir else None,
        warm=not args.no_warm,
        **kwargs,
    )


def _uvicorn_config(app: Any, args: argparse.Namespace, grace_s: float) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=max(1, round(grace_s)),
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )


def _announce(kind: str, args: argparse.Namespace, path: str = "") -> None:
    scheme = "https" if args.tls_cert else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"cellblock {kind}: listening on {scheme}://{host}:{args.port}{path}",
        file=sys.stderr,
        flush=True,
    )


def run_http(args: argparse.Namespace) -> int:
    from cellblock.service._http import create_app

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    store = FileTokenStore(Path(args.tokens) if args.tokens else None)
    core = _core(args)
    app = create_app(core, store, grace_s=args.grace)
    server = _DrainingServer(_uvicorn_config(app, args, args.grace), core)
    _announce("serve", args)
    try:
        server.run()
    finally:
        core.close()  # no-op after a graceful shutdown
    return 0


def run_mcp(args: argparse.Namespace) -> int:
    import warnings

    # The MCP SDK's settings model warns about its own forward reference on every start
    # (pydantic-settings >= 2.11); not ours to fix, and it would read as a problem in the log.
    warnings.filterwarnings("ignore", message="Field 'lifespan' has an incomplete definition")
    from cellblock.service._mcp import create_mcp

    if not args.http:
        from cellblock.policy import load_policy

        policy = args.policy or str(load_policy(None).path or load_policy(None).preset)
        identity = local_identity(policy, "mcp-stdio")
        core = _core(args)
        server = create_mcp(core, lambda _ctx: identity, policy=policy)
        # SIGTERM from the client: unwind through the finally below (cells killed, recorded)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.run("stdio")
        finally:
            core.shutdown(MCP_STDIO_GRACE_S)  # stdout may be closed now: cli.main allows it
        return 0

    if args.policy:
        raise ServiceError(
            "--policy applies to stdio only: over HTTP each token carries its policy"
        )
    store = FileTokenStore(Path(args.tokens) if args.tokens else None)
    core = _core(args)

    def identity_of(ctx: Any) -> Identity:
        request = ctx.request_context.request
        identity = request.scope.get("state", {}).get("identity") if request else None
        if not isinstance(identity, Identity):
            raise ServiceError("no caller identity on this request")
        return identity

    server = create_mcp(core, identity_of, host=args.host, port=args.port)
    logging.getLogger("mcp.server.streamable_http").addFilter(_ClientHangupFilter())
    starlette_app = server.streamable_http_app()
    inner = starlette_app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            yield state
        await asyncio.to_thread(core.shutdown, MCP_STDIO_GRACE_S)

    starlette_app.router.lifespan_context = lifespan

    async def healthz(_request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {"status": "draining" if core.draining else "ok"},
            status_code=503 if core.draining else 200,
        )

    starlette_app.add_route("/healthz", healthz, methods=["GET"])
    gated = TokenGate(starlette_app, store=store, via="mcp-http", protected=("/mcp",))
    uv = _DrainingServer(_uvicorn_config(gated, args, MCP_STDIO_GRACE_S), core)
    _announce("mcp", args, "/mcp")
    try:
        uv.run()
    finally:
        core.close()
    return 0
