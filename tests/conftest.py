"""Shared fixtures. Container tests run on the real engine with the real sandbox image."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellblock.sandbox import Limits
from cellblock.sandbox.interface import Backend


def _engine_client():  # type: ignore[no-untyped-def]
    from cellblock.sandbox.docker import connect

    return connect()


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    client = _engine_client()
    from cellblock.sandbox.image import build_image, inspect_image

    info = inspect_image(client)
    if not (info.present and info.current):
        # several xdist workers may get here at once; the build is idempotent
        build_image(client, progress=None)
    return client


@pytest.fixture(scope="session")
def backend(docker_client) -> Iterator[Backend]:  # type: ignore[no-untyped-def]
    from cellblock.sandbox.docker import DockerBackend

    b = DockerBackend(client=docker_client)
    yield b


def _runsc_available(backend: Backend) -> bool:
    return "runsc" in backend.runtimes()


@pytest.fixture(params=["runc", "runsc"])
def runtime(request, backend) -> str:  # type: ignore[no-untyped-def]
    name: str = request.param
    if name == "runsc" and not _runsc_available(backend):
        if os.environ.get("CELLBLOCK_REQUIRE_RUNSC"):
            pytest.fail("runsc is required (CELLBLOCK_REQUIRE_RUNSC) but not registered")
        pytest.skip("gVisor (runsc) is not registered with the engine")
    return name


@pytest.fixture
def limits(runtime: str) -> Limits:
    return Limits(runtime=runtime, timeout_s=5)


def managed_containers(client, owner_pid: int | None = None) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    flt = ["cellblock.managed=1"]
    if owner_pid is not None:
        flt.append(f"cellblock.owner_pid={owner_pid}")
    result: list[dict] = client.api.containers(all=True, filters={"label": flt})  # type: ignore[type-arg]
    return result


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@pytest.fixture(autouse=True, scope="session")
def _private_audit_dirs(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Keep the tests' audit logs and keys out of the user's home; subprocesses inherit this."""
    base = tmp_path_factory.mktemp("cellblock-home")
    saved = {
        k: os.environ.get(k)
        for k in ("CELLBLOCK_AUDIT_DIR", "CELLBLOCK_AUDIT_KEY_DIR", "CELLBLOCK_POLICY")
    }
    os.environ["CELLBLOCK_AUDIT_DIR"] = str(base / "audit")
    os.environ["CELLBLOCK_AUDIT_KEY_DIR"] = str(base / "keys")
    os.environ.setdefault(
        "CELLBLOCK_POLICY", str(Path(__file__).parent / "fixtures" / "runc-open.yaml")
    )
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def data_image(docker_client):  # type: ignore[no-untyped-def]
    """The `data` image profile, built once when absent (a file lock keeps xdist workers from
    building it twice; CI builds it in an earlier step and every later step reuses it)."""
    import fcntl
    import tempfile

    from cellblock.sandbox.profiles import DATA, build_profile_image, inspect_profile_image

    info = inspect_profile_image(docker_client, DATA)
    if not (info.present and info.current):
        lock = Path(tempfile.gettempdir()) / "cellblock-data-image.lock"
        with lock.open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            info = build_profile_image(docker_client, DATA, progress=None)
    return info


@pytest.fixture(scope="session")
def data_backend(docker_client, data_image) -> Iterator[Backend]:  # type: ignore[no-untyped-def]
    from cellblock.sandbox.docker import DockerBackend

    yield DockerBackend(client=docker_client, image=data_image.tag)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def dead_index_env(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment whose pip points at a closed loopback port (the index is unreachable)."""
    env = dict(os.environ)
    env["PIP_INDEX_URL"] = f"http://127.0.0.1:{closed_port}/simple"
    env.pop("PIP_EXTRA_INDEX_URL", None)
    env["PIP_FIND_LINKS"] = ""
    return env


