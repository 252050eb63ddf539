"""Live output for one-shot runs: ``on_stdout`` / ``on_stderr`` receive output while the program
still runs, the CLI's human mode prints it as it arrives (escaped), and ``run --session``.

Real containers. Ordering is measured, never a duration: the program stamps the wall clock
just before its second line, and the host stamps the moment its callback saw the first one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cellblock
from cellblock.sandbox import Limits, Sandbox
from cellblock.sandbox.interface import Backend

pytestmark = pytest.mark.docker

# first line, a pause, then a line carrying the program's own clock at that moment
PRINTS_SLEEPS_PRINTS = r"""
import sys, time
print("first", flush=True)
print("to stderr", file=sys.stderr, flush=True)
time.sleep(3)
print(f"second {time.time():.6f}", flush=True)
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[float, str, str]] = []

    def stream(self, name: str):  # type: ignore[no-untyped-def]
        def take(text: str) -> None:
            assert isinstance(text, str)
            self.events.append((time.time(), name, text))

        return take

    def text(self, name: str) -> str:
        return "".join(t for _, n, t in self.events if n == name)

    def first_seen(self, name: str, needle: str) -> float:
        seen = ""
        for when, n, text in self.events:
            if n == name:
                seen += text
                if needle in seen:
                    return when
        raise AssertionError(f"{needle!r} never reached the {name} callback")


def second_stamp(stdout: str) -> float:
    match = re.search(r"second (\d+\.\d+)", stdout)
    assert match, stdout
    return float(match.group(1))


def check_live(result: cellblock.ExecutionResult, rec: Recorder) -> None:
    assert result.ok, result
    # the callbacks saw exactly what the result holds ...
    assert rec.text("stdout") == result.stdout
    assert rec.text("stderr") == result.stderr == "to stderr\n"
    # ... and the first line before the program wrote its second one
    assert rec.first_seen("stdout", "first\n") < second_stamp(result.stdout)


@pytest.mark.parametrize("pooled", [False, True], ids=["cold", "pooled"])
def test_callbacks_receive_output_while_the_program_runs(
    backend: Backend, limits: Limits, pooled: bool
) -> None:
    rec = Recorder()
    with Sandbox(limits, backend=backend, pool_size=1 if pooled else 0) as sandbox:
        result = sandbox.run(
            PRINTS_SLEEPS_PRINTS, on_stdout=rec.stream("stdout"), on_stderr=rec.stream("stderr")
        )
    check_live(result, rec)


def test_pipeline_execute_streams(backend: Backend) -> None:
    rec = Recorder()
    outcome = cellblock.execute(
        PRINTS_SLEEPS_PRINTS,
        backend=backend,
        on_stdout=rec.stream("stdout"),
        on_stderr=rec.stream("stderr"),
    )
    assert outcome.execution is not None
    check_live(outcome.execution, rec)


def test_a_raising_callback_changes_nothing(backend: Backend) -> None:
    calls: list[str] = []

    def broken(text: str) -> None:
        calls.append(text)
        raise RuntimeError("the caller's display failed")

    code = "import sys\nfor i in range(3):\n    print(i, flush=True)\nsys.stderr.write('e')\n"
    with Sandbox(Limits(), backend=backend) as sandbox:
        result = sandbox.run(code, on_stdout=broken, on_stderr=broken)
    assert result.ok and result.exit_code == 0
    assert result.stdout == "0\n1\n2\n" and result.stderr == "e"
    assert "".join(calls) == "0\n1\n2\ne"  # called for every chunk, errors ignored


def test_callbacks_respect_the_output_cap(backend: Backend) -> None:
    got: list[str] = []
    with Sandbox(Limits(stdout_bytes=1000), backend=backend) as sandbox:
        result = sandbox.run("print('x' * 5000)", on_stdout=got.append)
    assert result.stdout_truncated
    assert "".join(got) == result.stdout == "x" * 1000


# -- the CLI, under a real pseudo-terminal ------------------------------------------------------

CLI_PROGRAM = r"""
import time
print("first \x1b]52;c;cm0gLXJmIH4=\x07 line", flush=True)
time.sleep(3)
print(f"second {time.time():.6f}", flush=True)
"""


def test_cli_prints_output_live_and_escaped(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    program = tmp_path / "slow.py"
    program.write_text(CLI_PROGRAM)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellblock.cli", "run", str(program)],
        stdout=slave,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    os.close(slave)
    shown = b""
    first_at: float | None = None
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 180)
            assert ready, "the CLI went silent"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if first_at is None and b"first" in shown:
                first_at = time.time()
        assert proc.wait(timeout=180) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        assert proc.stderr is not None
        proc.stderr.close()
    text = shown.decode().replace("\r\n", "\n")
    assert first_at is not None and first_at < second_stamp(text)
    assert "first \\x1b]52;c;cm0gLXJmIH4=\\x07 line\n" in text  # shown, not obeyed
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert text.count("first") == 1 and text.count("second") == 1  # not printed twice


def test_cli_notes_follow_all_live_output(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    program = tmp_path / "loop.py"
    program.write_text(
        "import sys\nprint('cellblock: all fine', flush=True)\n"
        "sys.stderr.write('no newline'); sys.stderr.flush()\nwhile True: pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", str(program), "--timeout", "3"],
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 124
    assert proc.stdout.decode() == "\\x63ellblock: all fine\n"
    err = proc.stderr.decode()
    assert "no newline\ncellblock: timed out after 3s\n" in err


def test_cli_json_has_no_live_output(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    import json

    program = tmp_path / "p.py"
    program.write_text("print('hello')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", str(program), "--json"],
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["stdout"] == "hello\n"


# -- run --session ------------------------------------------------------------------------------


def test_run_session_keeps_state_across_files(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data.csv").write_text("a\n3\n4\n")
    (tmp_path / "load.py").write_text("rows = open('data.csv').read().split()[1:]\n")
    (tmp_path / "summary.py").write_text("total = sum(int(r) for r in rows)\nprint('sum', total)\n")
    (tmp_path / "save.py").write_text("open('out.txt', 'w').write(str(total * 6))\ntotal\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable, "-m", "cellblock.cli", "run", "--session",
            "load.py", "summary.py", "save.py",
            "--file", "data.csv", "--collect", "out.txt", "--artifacts", str(out),
        ],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == "sum 7\n7\n"  # the last expression's value, like a REPL
    assert (out / "out.txt").read_text() == "42"


# -- chunk boundaries (no container: the host-side pieces on their own) -------------------------


def test_a_character_split_between_frames_arrives_whole() -> None:
    from cellblock.sandbox.docker import _Live
    from cellblock.sandbox.interface import RunRequest

    got: list[str] = []
    live = _Live(RunRequest("pass", on_stdout=got.append))
    data = "é€🙂\n".encode()
    for i in range(len(data)):
        live.give("stdout", data[i : i + 1])
    live.finish({"stdout": bytearray(data), "stderr": bytearray()}, Limits())
    assert "".join(got) == "é€🙂\n" and "\ufffd" not in "".join(got)


def test_live_cli_output_judges_whole_lines() -> None:
    import io

    from cellblock._terminal import LiveOutput

    screen = io.StringIO()
    live = LiveOutput(screen)
    for chunk in ("ok\ncell", "block: fake note\r", "\nlast \x1b[2J"):
        live(chunk)
    live.finish("ok\ncellblock: fake note\r\nlast \x1b[2J")
    assert screen.getvalue() == "ok\n\\x63ellblock: fake note\r\nlast \\x1b[2J\n"
