"""``cellblock session``: files as steps, and the JSON Lines protocol."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from cellblock.cli import main as cli_main

pytestmark = pytest.mark.docker


def test_files_as_steps_with_upload_and_artifacts(
    tmp_path: Path, runc_policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.csv").write_text("name,score\nada,3\nbob,5\n")
    (tmp_path / "load.py").write_text("import csv\nrows = list(csv.DictReader(open('d.csv')))\n")
    (tmp_path / "summary.py").write_text("sum(int(r['score']) for r in rows)\n")
    (tmp_path / "save.py").write_text("_ = open('total.txt', 'w').write(str(len(rows)))\n")
    out = tmp_path / "out"
    argv = ["session", *(str(tmp_path / n) for n in ("load.py", "summary.py", "save.py"))]
    argv += ["--file", f"{tmp_path / 'data.csv'}:d.csv", "--artifacts", str(out)]
    argv += ["--collect", "total.txt", "--policy", str(runc_policy), "--json"]
    assert cli_main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("status") for line in lines[:3]] == ["ok", "ok", "ok"]
    assert lines[1]["value"] == "8"
    assert lines[3]["event"] == "download" and lines[3]["artifacts"][0]["name"] == "total.txt"
    assert (out / "total.txt").read_text() == "2"


def test_failed_step_stops_and_sets_the_exit_status(
    tmp_path: Path, runc_policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "b.py").write_text("print('never')\n")
    argv = ["session", str(tmp_path / "a.py"), str(tmp_path / "b.py"), "--policy", str(runc_policy)]
    assert cli_main(argv) == 3
    assert "never" not in capsys.readouterr().out


def test_jsonl_protocol(
    runc_policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = [
        {"op": "run", "code": "x = 2"},
        {"op": "run", "code": "print('\\x1b[2J', end='')\nx * 21"},
        "this is not json",
        {"op": "upload", "name": "a.txt", "data_base64": base64.b64encode(b"hi").decode()},
        {"op": "upload", "name": "../escape.txt", "data_base64": ""},
        {"op": "list"},
        {"op": "download", "patterns": ["a.txt"]},
        {"op": "bogus"},
        {"op": "close"},
    ]
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in requests) + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert cli_main(["session", "--jsonl", "--policy", str(runc_policy)]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(answers) == len(requests)
    assert answers[1]["result"]["value"] == "42"
    assert answers[1]["result"]["stdout"] == "\x1b[2J"  # data in JSON, never a terminal command
    assert answers[2] == {
        "ok": False,
        "error": "the line is not JSON; send one JSON object per line",
    }
    assert answers[3]["files"][0]["size"] == 2
    assert answers[4]["ok"] is False and "escape" in answers[4]["error"]
    assert answers[5]["files"] == [{"name": "a.txt", "size": 2, "kind": "file"}]
    assert base64.b64decode(answers[6]["artifacts"][0]["data_base64"]) == b"hi"
    assert answers[7]["ok"] is False
    assert answers[8]["closed"] is True


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["session"]) == 64
    assert "give step files" in capsys.readouterr().err
