"""Service fixtures: real `cellblock serve` / `cellblock mcp --http` processes on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import managed_containers, wait_until

POLICIES = Path(__file__).parent / "policies"
REVIEW = str(POLICIES / "svc-review.yaml")
LOOSE = str(POLICIES / "svc-loose.yaml")
CELLBLOCK = str(Path(sys.executable).with_name("cellblock"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def svc_env(tmp_path: Path) -> dict[str, str]:
    """A private token file and audit log for one test (keys are the session's)."""
    env = dict(os.environ)
    env["CELLBLOCK_TOKENS"] = str(tmp_path / "tokens.json")
    env["CELLBLOCK_AUDIT_DIR"] = str(tmp_path / "audit")
    env.pop("CELLBLOCK_POLICY", None)
    return env


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([CELLBLOCK, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"cellblock {args} failed: {proc.stderr}")
    return proc


def make_token(
    env: dict[str, str], name: str = "t", policy: str = REVIEW, **flags: Any
) -> tuple[str, str]:
    args = ["token", "create", name, "--policy", policy, "--json"]
    for key, value in flags.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    data = json.loads(cli(env, *args).stdout)
    return data["token"], data["id"]


def audit_records(env: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for seg in sorted(Path(env["CELLBLOCK_AUDIT_DIR"]).glob("seg-*.jsonl")):
        for line in seg.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line)["record"])
    return out


class ServerProcess:
    def __init__(self, env: dict[str, str], args: list[str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(
            [CELLBLOCK, *args, "--port", str(port), "--no-warm"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),  # noqa: SIM115 -- closed with the process
        )
        ready = wait_until(self._healthy, timeout=90, interval=0.3)
        if not ready:
            self.stop()
            raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


@pytest.fixture
def start_server(svc_env: dict[str, str], tmp_path: Path, docker_client: Any) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(
            env or svc_env, list(args), free_port(), tmp_path / f"server{len(servers)}.log"
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        # whatever happened, nothing the server started is left on the engine
        assert wait_until(lambda s=server: not managed_containers(docker_client, s.pid), 30)
        assert "Traceback" not in server.log.read_text(errors="replace")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(predicate: Any, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False
