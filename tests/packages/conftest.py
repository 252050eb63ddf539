"""Fixtures for package tests: a session wheel cache (real downloads from the host's index)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cellblock.packages import PipResolver, WheelCache


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> WheelCache:
    return WheelCache(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def resolver(wheel_cache: WheelCache) -> PipResolver:
    return PipResolver(cache=wheel_cache)


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
    import os

    env = dict(os.environ)
    env["PIP_INDEX_URL"] = f"http://127.0.0.1:{closed_port}/simple"
    env.pop("PIP_EXTRA_INDEX_URL", None)
    env["PIP_FIND_LINKS"] = ""
    return env


def wheel_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())
