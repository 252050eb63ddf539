"""Fixtures for batch tests: a pipeline whose policy runs every level (under runc unless the
test tightens to runsc), a private audit log and key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cellblock.audit import generate_keypair
from cellblock.pipeline import Pipeline
from cellblock.sandbox.interface import Backend

POLICY = """\
version: 1
name: batch-test
description: Every level runs (hostile probes are flagged, and must still run here).
assessment:
  deep: never
decisions:
  none: allow
  low: allow
  medium: allow
  high: allow
  critical: allow
profiles:
  open:
    cpus: 1.0
    memory: 256m
    pids: 64
    timeout: 10s
    tmpfs: 64m
    tmp: 16m
    runtime: runc
decision_profiles:
  allow: open
  restrict: open
  review: open
audit:
  directory: {audit}
  signing_key: {key}
"""


@pytest.fixture
def batch_policy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(policy file, audit directory, public key)."""
    key, pub = tmp_path / "keys" / "k.key", tmp_path / "keys" / "k.pub"
    key.parent.mkdir()
    generate_keypair(key, pub)
    audit = tmp_path / "audit"
    path = tmp_path / "batch-test.yaml"
    path.write_text(POLICY.format(audit=audit, key=key))
    return path, audit, pub


@pytest.fixture
def pipeline(batch_policy: tuple[Path, Path, Path], backend: Backend) -> Iterator[Pipeline]:
    with Pipeline(batch_policy[0], backend=backend) as p:
        yield p
