"""Fixtures for package tests: a session wheel cache (real downloads from the host's index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellblock.packages import PipResolver, WheelCache


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> WheelCache:
    return WheelCache(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def resolver(wheel_cache: WheelCache) -> PipResolver:
    return PipResolver(cache=wheel_cache)


def wheel_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())
