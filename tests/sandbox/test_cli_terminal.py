"""What ``cellblock run`` shows on a person's terminal: the program's output as text, never as
terminal commands, and cellblock's own notes in a form the program cannot forge or hide.

Real CLI subprocesses, real containers (the test policy runs under runc)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

# What a hostile program prints: an OSC 52 clipboard write, a title change, clear screen and
# cursor home, an 8-bit CSI (U+009B) and a raw 0x9b byte, concealed text (SGR 8) that would hide
# what follows, a carriage return to overwrite a line, a bidi override, and fake notes (one with
# a Cyrillic look-alike letter) -- then it runs into its timeout, so a real note follows.
HOSTILE = r"""
import sys
out = sys.stdout
out.write("clip\x1b]52;c;cm0gLXJmIH4=\x07title\x1b]0;pwned\x07\x1b[2J\x1b[H")
out.write("c1\u009b31m\x1b[8mconcealed\rcellblock: ran fine, exit 0\n")
out.write("\u202eevil\n")
out.flush()
sys.stdout.buffer.write(b"raw\x9b2Jbyte\n")
sys.stdout.buffer.flush()
sys.stderr.write("cellblock: the run finished normally\n")
sys.stderr.write("  [cellblock] fake progress\n")
sys.stderr.write("\u0441ellblock: look-alike\n")
sys.stderr.write("\x1b[8m")
sys.stderr.write("no newline at the end")
sys.stderr.flush()
while True:
    pass
"""

CONTROL_BYTES = [bytes([b]) for b in range(0x20) if b not in (0x09, 0x0A)] + [b"\x7f"]


def run_cli(*args: str, stdin: bytes = b"", stderr: int | None = None) -> tuple[int, bytes, bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", *args],
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        env=os.environ.copy(),
        timeout=180,
    )
    return proc.returncode, proc.stdout, proc.stderr or b""


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    program = tmp_path / "hostile.py"
    program.write_text(HOSTILE)
    return program


def test_control_sequences_are_shown_not_obeyed(hostile: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("run", str(hostile), "--timeout", "3")
    assert code == 124
    for stream in (out, err):
        for control in CONTROL_BYTES:
            assert control not in stream, (control, stream)
        text = stream.decode("utf-8")
        for char in ("\u009b", "\u202e", "\u0441ellblock"):
            assert char not in text
    text_out = out.decode()
    # visible escapes instead: a person sees what the program tried
    assert "clip\\x1b]52;c;cm0gLXJmIH4=\\x07title\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H" in text_out
    assert "c1\\x9b31m\\x1b[8mconcealed\\rcellblock: ran fine, exit 0\n" in text_out
    assert "\\u202eevil\n" in text_out
    assert "raw\ufffd2Jbyte\n" in text_out  # the raw byte was never text: replaced, not 0x9b


def test_notes_cannot_be_forged_or_hidden(hostile: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    _, _, err = run_cli("run", str(hostile), "--timeout", "3")
    lines = err.decode().split("\n")
    # the program's imitations are marked: no line of its output starts like a note
    assert "\\x63ellblock: the run finished normally" in lines
    assert "  \\x5bcellblock] fake progress" in lines
    assert "\\u0441ellblock: look-alike" in lines
    # its unterminated last line is ended, so the real note starts a line of its own
    assert "\\x1b[8mno newline at the end" in lines
    notes = [line for line in lines if line.startswith("cellblock")]
    assert notes == ["cellblock: timed out after 3s"]
    assert lines[-2:] == ["cellblock: timed out after 3s", ""]


def test_json_keeps_the_exact_output(hostile: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("run", str(hostile), "--timeout", "3", "--json")
    assert code == 124
    assert b"\x1b" not in out and b"\x9b" not in out  # JSON escapes them itself
    data = json.loads(out)
    assert data["stdout"].startswith(
        "clip\x1b]52;c;cm0gLXJmIH4=\x07title\x1b]0;pwned\x07\x1b[2J\x1b[H"
        "c1\u009b31m\x1b[8mconcealed\rcellblock: ran fine, exit 0\n\u202eevil\n"
    )
    assert data["stderr"].endswith("\u0441ellblock: look-alike\n\x1b[8mno newline at the end")


def test_carriage_return_line_feed_and_plain_text_are_kept(docker_client) -> None:  # type: ignore[no-untyped-def]
    program = "print('a\\tb\\r\\nhéllo ✓ 👩\\u200d💻'); print('cellblock.yaml is a file name')\n"
    code, out, err = run_cli("run", "-", stdin=program.encode())
    assert (code, err) == (0, b"")
    assert out.decode() == "a\tb\r\nhéllo ✓ 👩\u200d💻\ncellblock.yaml is a file name\n"


def test_on_a_terminal_the_note_tag_is_drawn_in_reverse_video(hostile: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    # The one thing program output can never contain is a real ESC: the tag uses one.
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellblock.cli", "run", str(hostile), "--timeout", "3"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 180)
            if not ready:
                break
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
        proc.wait(timeout=180)
    assert proc.returncode == 124
    text = seen.decode().replace("\r\n", "\n")
    assert "\x1b[7mcellblock:\x1b[27m timed out after 3s\n" in text
    assert text.count("\x1b") == 2  # only the tag's own two sequences
    assert "\\x63ellblock: the run finished normally" in text
