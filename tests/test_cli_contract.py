"""The CLI's bad-input contract: documented exit statuses, one sentence, never a traceback, never a
hang. Each test runs the real ``cellblock`` command as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Generous bounds: they only turn a hang into a failure (the old code hung forever on a FIFO and
# waited 60 s on a silent engine); nothing here measures how fast an answer comes.
HANG_BOUND_S = 45


def cellblock(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = HANG_BOUND_S,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellblock.cli", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def one_sentence(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cellblock: error: ")
    return lines[0]


# -- 7: usage errors exit 64, not argparse's 2 (a program's own exit(2) means something else) ----


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-", "--timeout", "abc"],
        ["run", "-", "--pids", "many"],
        ["run", "-", "--cpus", "half"],
        ["run", "-", "--no-such-flag"],
        ["run"],
        ["no-such-command"],
        [],
        ["image"],
        ["image", "nope"],
        ["policy"],
        ["policy", "diff", "strict"],
        ["doctor", "--runtime", "kata"],
        ["gc", "--all", "extra"],
    ],
)
def test_usage_errors_exit_64_with_one_sentence(argv: list[str]) -> None:
    proc = cellblock(*argv, stdin="print(1)\n")
    assert proc.returncode == 64
    line = one_sentence(proc)
    assert "--help" in line


def test_usage_error_names_the_bad_value() -> None:
    proc = cellblock("run", "-", "--timeout", "abc", stdin="print(1)\n")
    assert one_sentence(proc) == (
        "cellblock: error: argument --timeout: invalid float value: 'abc'; "
        "see `cellblock run --help`"
    )


def test_assess_keeps_its_documented_usage_status(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("print(1)\n")
    proc = cellblock("assess", str(program), "--fail-on", "severe")
    assert proc.returncode == 2  # docs/assess.md: 2 for usage or input errors
    one_sentence(proc)


# -- 7: a deeply nested policy is a policy error, not a RecursionError --------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1000,
        "{a: " * 1000,
        "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings"],
)
def test_deeply_nested_policy_is_a_policy_error(tmp_path: Path, text: str) -> None:
    policy = tmp_path / "deep.yaml"
    policy.write_text(text)
    proc = cellblock("run", "-", "--policy", str(policy), stdin="print(1)\n")
    assert proc.returncode == 64
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert "nested at most 64 levels deep" in proc.stderr
    validate = cellblock("policy", "validate", str(policy))
    assert validate.returncode == 1
    assert "Traceback" not in validate.stderr
    assert validate.stdout.startswith(f"{policy}:1:") or "nested at most" in validate.stdout


def test_policy_with_a_character_yaml_refuses_is_an_issue(tmp_path: Path) -> None:
    policy = tmp_path / "nul.yaml"
    policy.write_bytes(b"version: 1\nname: a\x00b\n")
    proc = cellblock("policy", "validate", str(policy))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip() == (
        f"{policy}:2:8: expected printable YAML text, got the character #x0000, "
        "which YAML does not allow"
    )


def test_overlong_policy_name_is_a_policy_error() -> None:
    proc = cellblock("policy", "show", "x" * 5000)
    assert proc.returncode == 64
    one_sentence(proc)


def test_unreadable_stdin_file_is_an_input_error(tmp_path: Path) -> None:
    proc = cellblock("run", "-", "--stdin", str(tmp_path / "absent"), stdin="print(1)\n")
    assert proc.returncode == 65
    assert "--stdin file" in one_sentence(proc)


# -- 10: only regular files (or -) are programs ---------------------------------------------------


KINDS = ["fifo", "symlink-to-fifo", "directory", "device"]


@pytest.fixture
def not_regular(tmp_path: Path) -> dict[str, tuple[str, Path]]:
    """kind -> (what the error calls it, a path of that kind)."""
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    link = tmp_path / "link.py"
    link.symlink_to(fifo)  # what the link leads to decides
    directory = tmp_path / "dir.py"
    directory.mkdir()
    return {
        "fifo": ("a FIFO (named pipe)", fifo),
        "symlink-to-fifo": ("a FIFO (named pipe)", link),
        "directory": ("a directory", directory),
        "device": ("a character device", Path("/dev/null")),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_run_refuses_a_program_that_is_not_a_regular_file(
    not_regular: dict[str, tuple[str, Path]], kind: str
) -> None:
    what, path = not_regular[kind]
    proc = cellblock("run", str(path))
    assert proc.returncode == 65
    assert one_sentence(proc) == (
        f"cellblock: error: cannot read {path}: it is {what}, not a regular file; "
        "give a regular file, or - for stdin"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_assess_refuses_a_file_that_is_not_a_regular_file(
    not_regular: dict[str, tuple[str, Path]], kind: str
) -> None:
    what, path = not_regular[kind]
    proc = cellblock("assess", str(path))
    assert proc.returncode == 2  # the assess input error
    assert f"it is {what}, not a regular file" in one_sentence(proc)


def test_stdin_file_that_is_a_fifo_is_refused(not_regular: dict[str, tuple[str, Path]]) -> None:
    fifo = not_regular["fifo"][1]
    proc = cellblock("run", "-", "--stdin", str(fifo), stdin="print(1)\n")
    assert proc.returncode == 65
    assert "not a regular file" in one_sentence(proc)


def test_policy_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    proc = cellblock("run", "-", "--policy", str(fifo), stdin="print(1)\n")
    assert proc.returncode == 64
    assert "not a regular file" in one_sentence(proc)


def test_a_symlink_to_a_regular_file_still_runs_through_assess(tmp_path: Path) -> None:
    program = tmp_path / "real.py"
    program.write_text("print(1)\n")
    link = tmp_path / "link.py"
    link.symlink_to(program)
    proc = cellblock("assess", str(link), "--no-deep")
    assert proc.returncode == 0, proc.stderr
    assert "level NONE" in proc.stdout


# -- 9: an engine socket that accepts and never answers is named within seconds ------------------


class SilentServer:
    """Accepts connections and never answers (a stuck engine, or not an engine at all)."""

    def __init__(self, family: int, address: str | tuple[str, int]) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(params=["unix", "tcp"])
def silent_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, SilentServer]]:
    if request.param == "unix":
        path = str(tmp_path / "engine.sock")
        server = SilentServer(socket.AF_UNIX, path)
        url = f"unix://{path}"
    else:
        server = SilentServer(socket.AF_INET, ("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{server.sock.getsockname()[1]}"
    try:
        yield url, server
    finally:
        server.close()


@pytest.mark.parametrize("argv", [["gc"], ["image", "info"], ["run", "-"]])
def test_silent_engine_is_named_within_seconds(
    silent_engine: tuple[str, SilentServer], argv: list[str]
) -> None:
    url, server = silent_engine
    # the old code waited the 60 s API timeout: the subprocess bound (45 s) would expire
    proc = cellblock(*argv, stdin="print(1)\n", env={"DOCKER_HOST": url})
    assert proc.returncode == 70
    assert one_sentence(proc) == (
        f"cellblock: error: the Docker engine at {url} accepted the connection but did not "
        "answer within 5 s; check that a Docker engine (not something else) listens there and "
        "is not stuck, or point DOCKER_HOST at a running engine"
    )
    assert server.accepted >= 1  # it really connected, and the server really stayed silent
