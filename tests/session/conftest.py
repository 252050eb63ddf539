"""Fixtures for session tests: a policy per runtime, and the session's own audit directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent.parent / "fixtures" / "runc-open.yaml"


def policy_for(
    tmp_path: Path, runtime: str, *, block_high: bool = False, allow_all: bool = False
) -> Path:
    text = FIXTURE.read_text().replace("runtime: runc", f"runtime: {runtime}")
    text = text.replace("    timeout: 10s\n", "    timeout: 10s\n    images: [data]\n")
    text = text.replace("name: runc-open", f"name: session-{runtime}")
    if block_high:
        text = text.replace("  high: allow", "  high: block")
    if allow_all:  # the hostile battery: what the sandbox does when the policy lets it run
        text = text.replace("  critical: block", "  critical: allow")
    path = (
        tmp_path
        / f"policy-{runtime}{'-strict' if block_high else ''}{'-all' if allow_all else ''}.yaml"
    )
    path.write_text(text)
    return path


@pytest.fixture
def session_policy(tmp_path: Path, runtime: str) -> Path:
    return policy_for(tmp_path, runtime)


@pytest.fixture
def open_policy(tmp_path: Path, runtime: str) -> Path:
    return policy_for(tmp_path, runtime, allow_all=True)


@pytest.fixture
def runc_policy(tmp_path: Path) -> Path:
    return policy_for(tmp_path, "runc")


@pytest.fixture
def audit_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "audit"
