"""Files in and out of one-shot runs: round trip with hashes, caps, and every hostile file kind."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from cellblock.cli import main as cli_main
from cellblock.sandbox import Limits, Status
from cellblock.sandbox.files import (
    Artifact,
    FileCaps,
    FileError,
    collect_patterns,
    input_files,
    save_artifacts,
)
from cellblock.sandbox.interface import Backend, ExecutionResult, RunRequest

pytestmark = pytest.mark.docker


def run(
    backend: Backend,
    runtime: str,
    code: str,
    *,
    files: dict[str, bytes] | None = None,
    collect: tuple[str, ...] = ("*",),
    caps: FileCaps | None = None,
) -> ExecutionResult:
    request = RunRequest(
        code,
        limits=Limits(runtime=runtime),
        files=input_files(files or {}),
        collect=collect,
        file_caps=caps or FileCaps(),
    )
    return backend.run(request)


def refused(result: ExecutionResult) -> dict[str, str]:
    return {r.name: r.reason for r in result.files_refused}


def test_round_trip_with_hashes(backend: Backend, runtime: str) -> None:
    data = os.urandom(200_000)
    code = (
        "import hashlib\n"
        "raw = open('in/blob.bin', 'rb').read()\n"
        "print(hashlib.sha256(raw).hexdigest())\n"
        "open('out/copy.bin', 'wb').write(raw[::-1]) if __import__('os').makedirs('out') is None "
        "else None\n"
        "open('note.txt', 'w').write('done')\n"
    )
    result = run(backend, runtime, code, files={"in/blob.bin": data}, collect=("out/*", "*.txt"))
    assert result.status is Status.OK, result.stderr
    assert result.stdout.strip() == hashlib.sha256(data).hexdigest()
    got = {a.name: a for a in result.artifacts}
    assert set(got) == {"out/copy.bin", "note.txt"}
    assert got["out/copy.bin"].data == data[::-1]
    assert got["out/copy.bin"].sha256 == hashlib.sha256(data[::-1]).hexdigest()
    assert got["out/copy.bin"].size == len(data)
    assert got["note.txt"].media_type == "text/plain"
    # the JSON form carries the bytes and round-trips
    back = ExecutionResult.from_dict(json.loads(result.to_json()))
    assert back.artifacts == result.artifacts


def test_inputs_arrive_without_setuid_and_planted_links_are_replaced(
    backend: Backend, runtime: str
) -> None:
    code = (
        "import os, stat\n"
        "st = os.lstat('x.txt')\n"
        "print(oct(stat.S_IMODE(st.st_mode)), stat.S_ISREG(st.st_mode), open('x.txt').read())\n"
    )
    result = run(backend, runtime, code, files={"x.txt": b"payload"}, collect=())
    assert result.stdout == "0o644 True payload\n", result.stderr


def test_hostile_kinds_are_refused(backend: Backend, runtime: str) -> None:
    code = r"""
import os
open('ok.txt', 'w').write('fine')
os.symlink('/etc/passwd', 'link.txt')
os.symlink('/work', 'dirlink')
os.mkfifo('fifo.txt')
open('a.txt', 'w').write('a')
os.link('a.txt', 'hard.txt')
open('esc\x1b[2J.txt', 'w').write('x')
open('new\nline.txt', 'w').write('x')
open(b'bad\xff.txt', 'w').write('x')
open('suid.txt', 'w').write('s')
os.chmod('suid.txt', 0o6755)
try:
    os.mknod('dev.txt', 0o600 | 0o020000, os.makedev(1, 3))
except OSError as exc:
    print('mknod refused', exc.errno)
"""
    result = run(backend, runtime, code, collect=("*.txt", "dirlink"))
    assert result.status is Status.OK, result.stderr
    names = {a.name for a in result.artifacts}
    assert names == {"ok.txt", "suid.txt"}
    why = refused(result)
    assert why["link.txt"] == "symbolic link"
    assert why["fifo.txt"].startswith("not a regular file")
    assert why["hard.txt"].startswith("hard link") and why["a.txt"].startswith("hard link")
    assert why["esc\\x1b[2J.txt"] == "control character in name"
    assert why["new\\nline.txt"] == "control character in name"
    assert why["bad\\udcff.txt"] == "not valid UTF-8"
    assert why["dirlink"] == "symbolic link"  # a link to a directory: refused, never walked
    assert "mknod refused" in result.stdout or why["dev.txt"].startswith("not a regular")
    # the setuid bit does not come out: saved files are 0644 at most
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"cb-files-{os.getpid()}-{runtime}"
    paths = save_artifacts(result.artifacts, out)
    for path in paths:
        assert stat.S_IMODE(path.lstat().st_mode) & 0o7000 == 0


def test_caps_on_count_and_size(backend: Backend, runtime: str) -> None:
    code = "for i in range(3000):\n    open(f'f{i:04d}.txt', 'w').write('x' * 10)\n"
    result = run(
        backend, runtime, code, collect=("f*",), caps=FileCaps(max_files=5, max_bytes=1000)
    )
    assert result.status is Status.OK, result.stderr
    assert len(result.artifacts) == 5
    assert any("more than 5 files" in r.reason for r in result.files_refused)
    big = "open('big.bin', 'wb').write(b'x' * 5000)\nopen('small.bin', 'wb').write(b'y')\n"
    result = run(
        backend, runtime, big, collect=("*.bin",), caps=FileCaps(max_files=5, max_bytes=1000)
    )
    assert [a.name for a in result.artifacts] == ["small.bin"]
    assert refused(result)["big.bin"].startswith("over the total size cap")


def test_huge_directory_scan_is_bounded(backend: Backend) -> None:
    code = (
        "import os\n"
        "for i in range(12000):\n"
        "    os.close(os.open(f'e{i}', os.O_CREAT | os.O_WRONLY))\n"
    )
    result = run(backend, "runc", code, collect=("none-matches-*",))
    assert result.status is Status.OK, result.stderr
    assert any("scan stopped" in r.reason for r in result.files_refused)


@pytest.mark.parametrize(
    "name", ["../up.txt", "/etc/x", "a/../../b", "", "a//b", "ctl\x07.txt", "x/./y"]
)
def test_bad_upload_names_are_refused_on_the_host(name: str) -> None:
    with pytest.raises(FileError):
        input_files({name: b"x"})


@pytest.mark.parametrize("pattern", ["/abs/*", "../*", "a/../*", ""])
def test_bad_collect_patterns(pattern: str) -> None:
    with pytest.raises(FileError):
        collect_patterns([pattern])


def test_upload_caps_and_local_paths(tmp_path: Path) -> None:
    local = tmp_path / "d.csv"
    local.write_bytes(b"1,2\n")
    assert input_files([local])[0].name == "d.csv"
    with pytest.raises(FileError, match="cap"):
        input_files({"a": b"x" * 10, "b": b"y"}, FileCaps(max_files=1))
    with pytest.raises(FileError, match="cap"):
        input_files({"a": b"x" * 10}, FileCaps(max_bytes=5))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileError, match="not a regular file"):
        input_files([fifo])  # never blocks on a FIFO


def test_saving_never_follows_links_or_leaves_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "a.txt").symlink_to(victim)
    (out / "sub").symlink_to(tmp_path)
    data = b"new"
    art = Artifact.from_bytes("a.txt", data)
    with pytest.raises(FileError, match="not a regular file"):
        save_artifacts([art], out)
    with pytest.raises(FileError, match="not a plain directory"):
        save_artifacts([Artifact.from_bytes("sub/victim.txt", data)], out)
    assert victim.read_text() == "keep"
    forged = Artifact("../victim.txt", "text/plain", 3, "0", data)
    with pytest.raises(FileError):
        save_artifacts([forged], out)
    assert victim.read_text() == "keep"


def test_cli_file_and_artifacts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    prog = tmp_path / "p.py"
    prog.write_text(
        "import csv\nrows = list(csv.reader(open('in/d.csv')))\n"
        "open('summary.txt', 'w').write(str(len(rows)))\n"
    )
    out = tmp_path / "out"
    status = cli_main(
        [
            "run",
            str(prog),
            "--file",
            f"{tmp_path / 'data.csv'}:in/d.csv",
            "--artifacts",
            str(out),
            "--json",
        ]
    )
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in data["artifacts"]] == ["summary.txt"]  # inputs and main.py left out
    assert data["artifacts"][0]["path"] == str(out / "summary.txt")
    assert (out / "summary.txt").read_text() == "2"
    assert cli_main(["run", str(prog), "--file", str(tmp_path / "missing.csv")]) == 64
    assert "does not exist" in capsys.readouterr().err
