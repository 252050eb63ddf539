"""The `cellblock assess` subcommand: formats and exit codes."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from cellblock.assess import _cli


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cellblock")
    sub = parser.add_subparsers(dest="command", required=True)
    _cli.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _cli.AssessError as exc:  # what cellblock.cli does with CellblockError
        print(f"cellblock: error: {exc}", file=sys.stderr)
        return exc.exit_code


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"benign": tmp_path / "ok.py", "risky": tmp_path / "bad.py",
           "broken": tmp_path / "broken.py"}
    out["benign"].write_text("print(sum(range(10)))\n")
    out["risky"].write_text("import os\nos.system('id')\n")
    out["broken"].write_bytes(b"\xff\xfe\x00")
    return out


def test_benign_exits_zero(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", str(files["benign"])]) == 0
    assert "level NONE" in capsys.readouterr().out


def test_risky_exits_one_at_default_fail_on(files: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", str(files["risky"]), "--no-deep"]) == 1
    out = capsys.readouterr().out
    assert "cb.process.spawn" in out and "HIGH" in out


def test_fail_on_threshold(files: dict[str, Path]) -> None:
    assert main(["assess", str(files["risky"]), "--fail-on", "critical", "--no-deep"]) == 0
    assert main(["assess", str(files["risky"]), "--fail-on", "low", "--no-deep"]) == 1


def test_json_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", str(files["risky"]), "--format", "json", "--deep"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["level"] == "high" and d["deep_ran"] is True
    assert {"ast", "bandit", "semgrep"} <= set(d["tool_versions"])


def test_sarif_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(["assess", str(files["risky"]), "--format", "sarif", "--no-deep"])
    assert json.loads(capsys.readouterr().out)["version"] == "2.1.0"


def test_undecodable_file_fails_closed(files: dict[str, Path]) -> None:
    assert main(["assess", str(files["broken"])]) == 1


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"import pickle\npickle.loads(b'')\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["assess", "-", "--format", "json", "--no-deep"]) == 1
    assert json.loads(capsys.readouterr().out)["filename"] == "<stdin>"


def test_missing_file_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assess", str(tmp_path / "nope.py")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_usage_errors_exit_two(files: dict[str, Path]) -> None:
    for argv in (["assess", str(files["benign"]), "--fail-on", "severe"],
                 ["assess", str(files["benign"]), "--fail-on", "none"],
                 ["assess", str(files["benign"]), "--format", "xml"], ["assess"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def test_through_the_real_dispatcher(files: dict[str, Path]) -> None:
    cli = pytest.importorskip("cellblock.cli")
    try:
        code = cli.main(["assess", str(files["risky"]), "--no-deep"])
    except ImportError:
        pytest.skip("another subsystem's CLI is not importable yet")
    assert code == 1
