"""`cellblock run` of several files or of a JSON Lines file: one result per line with --json,
the documented exit status of a batch (docs/batch.md), and bad input refused before anything
runs (one sentence, exit 64, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


def cellblock(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellblock.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def audit_types(audit_dir: Path) -> list[str]:
    out = []
    for seg in sorted(audit_dir.glob("seg-*.jsonl")):
        out += [json.loads(line)["record"]["type"] for line in seg.read_text().splitlines()]
    return out


def test_several_files_give_one_json_line_each_in_order(
    tmp_path: Path, batch_policy: tuple[Path, Path, Path], docker_client: object
) -> None:
    policy, audit_dir, _ = batch_policy
    files = []
    for i, code in enumerate(["print('zero')", "import sys; sys.exit(4)", "print('two')"]):
        path = tmp_path / f"p{i}.py"
        path.write_text(code)
        files.append(str(path))
    proc = cellblock("run", "--policy", str(policy), "--json", *files)
    assert proc.returncode == 1, proc.stderr  # one program did not succeed
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert [line["id"] for line in lines] == files
    assert [line["status"] for line in lines] == ["ok", "error", "ok"]
    assert lines[0]["stdout"] == "zero\n" and lines[1]["exit_code"] == 4
    assert "Traceback" not in proc.stderr
    assert audit_types(audit_dir).count("execution.finished") == 3

    ok = cellblock("run", "--policy", str(policy), files[0], files[2])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "zero\ntwo\n"


def test_jsonl_programs_with_ids_and_stdin(
    tmp_path: Path, batch_policy: tuple[Path, Path, Path], docker_client: object
) -> None:
    policy, _, _ = batch_policy
    jsonl = tmp_path / "programs.jsonl"
    jsonl.write_text(
        json.dumps({"id": "echo", "code": "print(input().upper())", "stdin": "hi\n"})
        + "\n\n"
        + json.dumps({"id": 7, "code": "print(6 * 7)"})
        + "\n"
    )
    proc = cellblock("run", "--policy", str(policy), "--json", "--jsonl", str(jsonl))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["id"], x["stdout"]) for x in lines] == [("echo", "HI\n"), ("7", "42\n")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"code": "print(1)"}\nnot json\n', "line 2 of"),
        ('{"id": "x"}\n', 'has no "code" string'),
        ("[1, 2]\n", "is not a JSON object"),
        ('{"code": "print(1)", "stdin": 5}\n', '"stdin" must be a string'),
        ('{"code": "print(1)", "env": {}}\n', "unknown field(s) env"),
        ("\n\n", "holds no programs"),
    ],
)
def test_bad_jsonl_is_refused_before_anything_runs(
    tmp_path: Path, batch_policy: tuple[Path, Path, Path], content: str, message: str
) -> None:
    policy, audit_dir, _ = batch_policy
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(content)
    proc = cellblock("run", "--policy", str(policy), "--jsonl", str(jsonl))
    assert proc.returncode == 64, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "execution.started" not in audit_types(audit_dir)


def test_stdin_program_cannot_join_a_batch(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("print(1)")
    proc = cellblock("run", "-", str(program), stdin="print(2)")
    assert proc.returncode == 64
    assert "can only be given alone" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "flag",
    [["--image", "data"], ["--with", "six==1.16.0"], ["--file", "x.csv"], ["--artifacts", "out"]],
)
def test_flags_a_batch_cannot_honour_are_refused_before_anything_runs(
    tmp_path: Path, batch_policy: tuple[Path, Path, Path], flag: list[str]
) -> None:
    policy, audit_dir, _ = batch_policy
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("print('a')\n")
    b.write_text("print('b')\n")
    r = cellblock(
        "run", str(a), str(b), "--policy", str(policy), "--audit-dir", str(audit_dir), *flag
    )
    assert r.returncode == 64, r.stderr
    assert f"{flag[0]} cannot be used with a batch" in r.stderr
    assert "Traceback" not in r.stderr
    assert "execution.started" not in audit_types(audit_dir)
