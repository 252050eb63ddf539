"""The egress proxy. Runs inside the proxy container (stdlib only; its source is the command).

It serves only clients on the cell's private network. It lets through CONNECT, and plain HTTP
requests in absolute form, to allowlisted names on allowed ports; it resolves each name itself
and refuses it when any of its addresses is not a public one (loopback, private, link-local and
so the cloud metadata address, multicast, reserved): a name that rebinds to an inside address
is refused, and the proxy connects to exactly the address it checked. Address literals are
refused. TLS is never intercepted: CONNECT tunnels are relayed byte for byte. Every attempt is
one JSON line on stdout; the bytes of all connections together are held to a budget. The proxy
exits when its stdin closes (its owner hung up or died).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sys
import threading
import time
from typing import Any

CONFIG = json.loads(os.environ["CELLBLOCK_EGRESS"])
ALLOW = tuple(CONFIG["allow"])
PORTS = frozenset(CONFIG["ports"])
BUDGET = int(CONFIG["budget_bytes"])
CLIENTS = ipaddress.ip_network(CONFIG["clients"])
PINNED = dict(CONFIG.get("hosts", []))
LISTEN_PORT = int(CONFIG.get("listen_port", 3128))
IDLE_S = float(CONFIG.get("idle_s", 0))
HEAD_LIMIT = 16 * 1024
CHUNK = 64 * 1024
MAX_CLIENTS = 64
# dropped from forwarded requests; Host is set from the target, so a request cannot name another
# site served from the allowed host's address
HOP_HEADERS = (
    b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive", b"host"
)

state: dict[str, int] = {"used": 0, "exceeded": 0, "running": 0}
tunnels: set[asyncio.Task[Any]] = set()


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def name_allowed(host: str) -> bool:
    for entry in ALLOW:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


# Inside addresses: loopback, private (RFC 1918, unique local), link-local (so the cloud metadata
# address 169.254.169.254), shared/CGNAT (some clouds' metadata), unspecified, multicast,
# reserved and broadcast. Documentation and benchmarking ranges are not refused: some networks
# (TLS-intercepting ones among them) answer public names with such addresses.
INSIDE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
))


def public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not any(ip.version == net.version and ip in net for net in INSIDE)


def is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int) -> list[str]:
    if host in PINNED:
        return [PINNED[host]]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def parse_target(head: bytes) -> tuple[str, str, int, bytes | None]:
    """(method, host, port, forwarded head or None) from the request head, or raise ValueError."""
    lines = head.split(b"\r\n")
    method, target, version = lines[0].decode("latin-1").split(" ", 2)
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        return method, host, int(port), None
    if not target.lower().startswith("http://"):
        raise ValueError("only CONNECT and absolute http:// requests are served")
    rest = target[7:]
    authority, slash, path = rest.partition("/")
    host, port = authority, ""
    if ":" in authority.rsplit("]", 1)[-1]:
        host, _, port = authority.rpartition(":")
    keep = [f"{method} /{path if slash else ''} {version}".encode("latin-1")]
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if line and name not in HOP_HEADERS:
            keep.append(line)
    keep.insert(1, f"Host: {authority}".encode("latin-1"))
    keep.append(b"Connection: close")
    return method, host, int(port or 80), b"\r\n".join(keep) + b"\r\n\r\n"


async def refuse(
    writer: asyncio.StreamWriter, record: dict[str, Any], reason: str, status: int = 403
) -> None:
    record.update(allowed=False, reason=reason)
    body = f"cellblock egress proxy: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} Forbidden\r\nX-Cellblock-Reason: {reason}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body)
        await writer.drain()
    except OSError:
        pass


async def pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    record: dict[str, Any],
    key: str,
    others: tuple[asyncio.StreamWriter, ...],
) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if state["used"] + len(data) > BUDGET:
                state["exceeded"] = 1
                record["reason"] = "budget exceeded"
                for other in others:
                    other.close()
                break
            state["used"] += len(data)
            record[key] += len(data)
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    started = time.time()
    t0 = time.monotonic()
    peer = writer.get_extra_info("peername") or ("", 0)
    record: dict[str, Any] = {
        "event": "connection", "host": "", "port": 0, "method": "", "allowed": False,
        "reason": "", "address": None, "bytes_up": 0, "bytes_down": 0, "duration_s": 0.0,
        "started": round(started, 6),
    }
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    task = asyncio.current_task()
    assert task is not None
    tunnels.add(task)
    try:
        if ipaddress.ip_address(peer[0]) not in CLIENTS:
            record["reason"] = "client not on the cell's network"
            return
        if len(tunnels) > MAX_CLIENTS:
            await refuse(writer, record, "too many connections", 429)
            return
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            record["reason"] = "no request"
            return
        try:
            method, host, port, forward = parse_target(head[:-4])
        except (ValueError, IndexError):
            await refuse(writer, record, "malformed request", 400)
            return
        host = host.strip().lower().rstrip(".")
        record.update(method=method, host=host, port=port)
        if is_literal(host):
            await refuse(writer, record, "address literals are not allowed")
            return
        if not name_allowed(host):
            await refuse(writer, record, "name not in allowlist")
            return
        if port not in PORTS:
            await refuse(writer, record, "port not allowed")
            return
        if state["used"] >= BUDGET or state["used"] + len(forward or b"") > BUDGET:
            state["exceeded"] = 1
            await refuse(writer, record, "budget exceeded")
            return
        try:
            addresses = await asyncio.wait_for(resolve(host, port), 15)
        except (TimeoutError, OSError):
            await refuse(writer, record, "name does not resolve", 502)
            return
        inside = [a for a in addresses if not public(a)]
        if inside or not addresses:
            record["address"] = inside[0] if inside else None
            await refuse(writer, record, "resolves to a non-public address")
            return
        last_error = "no address"
        for address in addresses:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(address, port), 15)
                record["address"] = address
                break
            except (TimeoutError, OSError) as exc:
                last_error = type(exc).__name__
        if upstream is None:
            await refuse(writer, record, f"upstream unreachable ({last_error})", 502)
            return
        up_reader, up_writer = upstream
        record.update(allowed=True, reason="allowed")
        if forward is None:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            record["bytes_up"] += len(forward)
            state["used"] += len(forward)
            up_writer.write(forward)
        others = (writer, up_writer)
        await asyncio.gather(
            pump(reader, up_writer, record, "bytes_up", others),
            pump(up_reader, writer, record, "bytes_down", others),
        )
    except asyncio.CancelledError:
        if record["allowed"] and record["reason"] == "allowed":
            record["reason"] = "closed at the end of the run"
    except Exception as exc:  # one bad connection never stops the proxy
        record["reason"] = record["reason"] or f"proxy error: {type(exc).__name__}"
    finally:
        tunnels.discard(task)
        record["duration_s"] = round(time.monotonic() - t0, 6)
        if upstream is not None:
            upstream[1].close()
        writer.close()
        emit(record)


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    try:
        while sys.stdin.buffer.read(1):  # any byte: the cell's program has started
            state["running"] = 1
    except OSError:
        pass
    loop.call_soon_threadsafe(stop.set)


async def idle_stop(stop: asyncio.Event) -> None:
    """A pooled cell's runner leaves when no program came within its idle time; so does this."""
    if IDLE_S > 0:
        await asyncio.sleep(IDLE_S + 5)
        if not state["running"]:
            stop.set()


async def main() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = await asyncio.start_server(handle, "0.0.0.0", LISTEN_PORT, limit=HEAD_LIMIT)
    threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()
    emit({"event": "ready", "port": LISTEN_PORT})
    idle = asyncio.ensure_future(idle_stop(stop))
    await stop.wait()
    idle.cancel()
    server.close()
    for task in list(tunnels):
        task.cancel()
    if tunnels:
        await asyncio.wait(list(tunnels), timeout=5)
    emit({"event": "bye", "used_bytes": state["used"], "budget_exceeded": bool(state["exceeded"])})


if __name__ == "__main__":  # python3 -c SOURCE runs it; tests import it to check its parts
    asyncio.run(main())
