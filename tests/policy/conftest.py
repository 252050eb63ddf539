from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from cellblock.errors import CellblockError
from cellblock.policy import _cli


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def _run_cli(argv: Sequence[str]) -> CliResult:
    """Run ``cellblock policy ...`` the way the top-level dispatcher will."""
    parser = argparse.ArgumentParser(prog="cellblock")
    sub = parser.add_subparsers(dest="command", required=True)
    _cli.register(sub)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        args = parser.parse_args(list(argv))
        try:
            code = args.func(args)
        except CellblockError as exc:
            print(f"cellblock: error: {exc}", file=err)
            code = exc.exit_code
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    """An empty working directory, no $CELLBLOCK_POLICY, and an empty user config dir."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("CELLBLOCK_POLICY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return work


@pytest.fixture
def run_cli():  # type: ignore[no-untyped-def]
    """``run_cli(["policy", "validate", "x.yaml"]) -> CliResult(code, out, err)``."""
    return _run_cli
