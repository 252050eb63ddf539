"""Fixtures for the audit tests (helpers live in _util)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellblock.audit import DirectoryWitness, generate_keypair

from ._util import Env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    priv, pub = tmp_path / "keys" / "a.key", tmp_path / "keys" / "a.pub"
    generate_keypair(priv, pub)
    return Env(tmp_path, tmp_path / "log", priv, pub, DirectoryWitness(tmp_path / "witness"))
