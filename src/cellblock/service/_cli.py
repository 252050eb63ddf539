"""CLI: ``cellblock token create|list|revoke``, ``serve``, ``mcp``, ``ps`` and ``top``."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from pathlib import Path
from typing import Any

from cellblock.sandbox.interface import parse_size
from cellblock.service.interface import Quotas, ServiceError, ServiceInputError

DEFAULT_PORT = 8765
DEFAULT_MCP_PORT = 8766


def register(sub: argparse._SubParsersAction[Any]) -> None:
    token = sub.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token (its secret is shown once)")
    create.add_argument("name", help="a label for the token (who or what uses it)")
    create.add_argument(
        "--policy",
        default="strict",
        metavar="NAME|FILE",
        help="the policy every run of this token uses (default strict)",
    )
    q = Quotas()
    create.add_argument(
        "--concurrent",
        type=int,
        default=q.max_concurrent,
        help=f"runs in flight at once (default {q.max_concurrent})",
    )
    create.add_argument(
        "--per-minute",
        type=int,
        default=q.runs_per_minute,
        help=f"runs started per minute (default {q.runs_per_minute})",
    )
    create.add_argument(
        "--max-request", default="1m", metavar="SIZE", help="largest request body (default 1m)"
    )
    create.add_argument(
        "--max-output",
        default="1m",
        metavar="SIZE",
        help="stdout and stderr cap per run (default 1m)",
    )
    create.add_argument("--tokens", metavar="FILE", help="token file (default: user config dir)")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_token_create)
    lst = actions.add_parser("list", help="list tokens (never their secrets)")
    lst.add_argument("--tokens", metavar="FILE")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_token_list)
    revoke = actions.add_parser("revoke", help="revoke a token by id (takes effect at once)")
    revoke.add_argument("token_id", metavar="ID")
    revoke.add_argument("--tokens", metavar="FILE")
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(func=cmd_token_revoke)

    serve = sub.add_parser("serve", help="serve the HTTP API (loopback by default)")
    _server_flags(serve, DEFAULT_PORT)
    serve.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running cells may finish (default 30)",
    )
    serve.set_defaults(func=cmd_serve)

    mcp = sub.add_parser("mcp", help="serve MCP tools over stdio (default) or streamable HTTP")
    mcp.add_argument(
        "--http",
        action="store_true",
        help="streamable HTTP instead of stdio (bearer tokens required)",
    )
    mcp.add_argument(
        "--policy", metavar="NAME|FILE", help="stdio only: the policy in force (default: lookup)"
    )
    _server_flags(mcp, DEFAULT_MCP_PORT)
    mcp.set_defaults(func=cmd_mcp)

    ps = sub.add_parser("ps", help="list live cells: owner, age, CPU %, memory, pids, runtime")
    ps.add_argument("--json", action="store_true")
    ps.add_argument("--mine", action="store_true", help="only cells of this process (testing)")
    ps.set_defaults(func=cmd_ps)
    top = sub.add_parser("top", help="live view of cells, refreshed")
    top.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
    top.add_argument("--iterations", type=int, default=0, help="stop after N refreshes")
    top.set_defaults(func=cmd_top)


def _server_flags(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")
    parser.add_argument(
        "--allow-remote", action="store_true", help="required to bind a non-loopback address"
    )
    parser.add_argument(
        "--tls-terminator",
        action="store_true",
        help="say a TLS-terminating proxy is in front (silences the warning)",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate")
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")
    parser.add_argument("--tokens", metavar="FILE", help="token file (default: user config dir)")
    parser.add_argument("--audit-dir", metavar="DIR", help="audit log directory")
    parser.add_argument("--no-warm", action="store_true", help="do not pre-start warm cells")


def _store(args: argparse.Namespace) -> Any:
    from cellblock.service._tokens import FileTokenStore

    return FileTokenStore(Path(args.tokens) if args.tokens else None)


def _size(value: str, name: str) -> int:
    from cellblock.errors import CellblockError

    try:
        return parse_size(value, field_name=name)
    except CellblockError as exc:
        raise ServiceInputError(f"--{name}: {exc}") from None


def cmd_token_create(args: argparse.Namespace) -> int:
    from cellblock.policy import load_policy

    policy = args.policy
    loaded = load_policy(policy)  # refuse a policy that does not load, now and not at first use
    if loaded.path is not None:
        policy = str(loaded.path.resolve())  # the server may run in another directory
    quotas = Quotas(
        max_concurrent=args.concurrent,
        runs_per_minute=args.per_minute,
        max_request_bytes=_size(args.max_request, "max-request"),
        max_output_bytes=_size(args.max_output, "max-output"),
    )
    created = _store(args).create(args.name, policy=policy, quotas=quotas)
    if args.json:
        print(json.dumps({**created.info.to_dict(), "token": created.secret}, indent=2))
    else:
        print(created.secret)
        print(
            f"token {created.info.token_id} ({args.name}, policy {policy}) created; "
            "the secret above is shown only once",
            file=sys.stderr,
        )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    tokens = _store(args).list()
    if args.json:
        print(json.dumps([t.to_dict() for t in tokens], indent=2))
        return 0
    print(f"{'ID':<17} {'NAME':<20} {'POLICY':<12} {'CONC':>4} {'/MIN':>5} {'STATE':<8}")
    for t in tokens:
        state = "revoked" if t.revoked else "active"
        print(
            f"{t.token_id:<17} {t.name[:20]:<20} {t.policy[:12]:<12} "
            f"{t.quotas.max_concurrent:>4} {t.quotas.runs_per_minute:>5} {state:<8}"
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    info = _store(args).revoke(args.token_id)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(f"token {info.token_id} ({info.name}) revoked")
    return 0


def check_bind(args: argparse.Namespace) -> None:
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback and not args.allow_remote:
        raise ServiceInputError(
            f"refusing to bind {args.host}, which is not a loopback address; "
            "pass --allow-remote to serve other machines"
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServiceInputError("--tls-cert and --tls-key go together")
    if not loopback and not (args.tls_terminator or args.tls_cert):
        print(
            f"cellblock: warning: serving {args.host} without TLS: bearer tokens cross the "
            "network in clear; put a TLS-terminating proxy in front (--tls-terminator) "
            "or pass --tls-cert/--tls-key",
            file=sys.stderr,
        )


def _require_extra() -> None:
    import importlib.util

    missing = [
        m
        for m in ("fastapi", "uvicorn", "prometheus_client", "mcp")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise ServiceError(
            f"the servers need the service extra ({', '.join(missing)} missing): "
            "pip install 'cellblock[service]'"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    _require_extra()
    check_bind(args)
    from cellblock.service._server import run_http

    return run_http(args)


def cmd_mcp(args: argparse.Namespace) -> int:
    _require_extra()
    from cellblock.service._server import run_mcp

    if args.http:
        check_bind(args)
    return run_mcp(args)


def _backend() -> Any:
    from cellblock.sandbox.docker import DockerBackend, connect

    return DockerBackend(client=connect())


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def cmd_ps(args: argparse.Namespace) -> int:
    from cellblock.service._monitor import live_cells

    cells = live_cells(_backend(), owned_by_me=args.mine, sample_s=0.5)
    if args.json:
        print(json.dumps([c.to_dict() for c in cells], indent=2))
        return 0
    print(
        f"{'CELL':<12} {'KIND':<7} {'OWNER':<24} {'AGE':>7} {'CPU%':>6} {'MEM':>8} "
        f"{'PIDS':>4} {'RUNTIME':<7}"
    )
    for c in cells:
        cpu = "-" if c.cpu_percent is None else f"{c.cpu_percent:.1f}"
        print(
            f"{c.short_id:<12} {c.kind:<7} {c.owner[:24]:<24} {c.age_s:>6.0f}s {cpu:>6} "
            f"{_fmt_bytes(c.memory_bytes):>8} {c.pids if c.pids is not None else '-':>4} "
            f"{c.runtime:<7}"
        )
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from rich.live import Live
    from rich.table import Table

    from cellblock.service._monitor import live_cells

    backend = _backend()

    def table() -> Table:
        cells = live_cells(backend, sample_s=max(0.1, args.interval))
        t = Table(title=f"cellblock cells ({len(cells)}) {time.strftime('%H:%M:%S')}")
        for col in ("CELL", "KIND", "OWNER", "AGE", "CPU%", "MEM", "PIDS", "RUNTIME"):
            t.add_column(col, justify="right" if col in ("AGE", "CPU%", "MEM", "PIDS") else "left")
        for c in cells:
            t.add_row(
                c.short_id,
                c.kind,
                c.owner,
                f"{c.age_s:.0f}s",
                "-" if c.cpu_percent is None else f"{c.cpu_percent:.1f}",
                _fmt_bytes(c.memory_bytes),
                "-" if c.pids is None else str(c.pids),
                c.runtime,
            )
        return t

    count = 0
    with Live(table(), auto_refresh=False) as live:
        while args.iterations <= 0 or count < args.iterations:
            live.update(table(), refresh=True)
            count += 1
    return 0
