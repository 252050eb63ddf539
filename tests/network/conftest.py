"""Fixtures for allowlist tests: loopback servers that must never be reached, and leak checks.

Network safety: these tests send traffic only to servers they start on this machine and, in the
pip tests, to the package index the host's pip is configured to use, through the proxy.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class TrapServer:
    """A TCP server that counts every connection it accepts (it must count none)."""

    host: str
    port: int = 0
    accepted: list[tuple[str, int]] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> TrapServer:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(16)
        self._sock, self.port = sock, sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return
            self.accepted.append(peer)
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nreached\n")
            conn.close()

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def trap_servers() -> Iterator[tuple[TrapServer, TrapServer]]:
    """One server on the host's loopback, one on all the host's addresses."""
    loopback = TrapServer("127.0.0.1").start()
    everywhere = TrapServer("0.0.0.0").start()
    yield loopback, everywhere
    loopback.stop()
    everywhere.stop()


@pytest.fixture
def bridge_gateway(docker_client) -> str:  # type: ignore[no-untyped-def]
    """The host's own address on the engine's default bridge (an IP literal on this machine)."""
    import ipaddress

    config = docker_client.api.inspect_network("bridge")["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(autouse=True)
def _no_leftover_networks(request):  # type: ignore[no-untyped-def]
    yield
    if "docker_client" not in request.fixturenames:
        return
    client = request.getfixturevalue("docker_client")
    from cellblock.network.docker import LABEL_NETWORK
    from tests.conftest import wait_until

    def mine() -> list[dict]:  # type: ignore[type-arg]
        flt = {"label": [f"{LABEL_NETWORK}=1", f"cellblock.owner_pid={os.getpid()}"]}
        found: list[dict] = client.api.networks(filters=flt)  # type: ignore[type-arg]
        return found

    # a run's proxy and network are removed in the background, after its result
    assert wait_until(lambda: mine() == [], timeout=30), [n["Name"] for n in mine()]
