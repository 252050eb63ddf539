"""The terminal view's escaping rules and the regular-file reader, character by character."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from cellblock._inputs import NotRegularFileError, read_regular_file
from cellblock._terminal import escape_text, note, program_output


@pytest.mark.parametrize("code", [c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)])
def test_every_c0_control_but_newline_and_tab_is_escaped(code: int) -> None:
    assert escape_text(f"a{chr(code)}b") == f"a\\x{code:02x}b"


@pytest.mark.parametrize("code", [0x7F, *range(0x80, 0xA0)])
def test_del_and_every_c1_control_is_escaped(code: int) -> None:
    assert escape_text(chr(code)) == f"\\x{code:02x}"


@pytest.mark.parametrize(
    "char",
    [
        "\u202e",  # right-to-left override
        "\u2066",  # left-to-right isolate
        "\u200b",  # zero-width space
        "\u2028",  # line separator
        "\u2029",  # paragraph separator
        "\ufeff",  # zero-width no-break space
        "\udcff",  # a lone surrogate (undecodable input)
        "\U000e0041",  # tag character (invisible "ASCII smuggling")
        "\u00ad",  # soft hyphen
    ],
)
def test_unicode_format_and_separator_characters_are_escaped(char: str) -> None:
    escaped = escape_text(f"x{char}y")
    assert char not in escaped
    assert escaped.startswith("x\\") and escaped.endswith("y")


def test_text_newlines_tabs_crlf_and_joiners_are_kept() -> None:
    text = "tab\there\r\nline\nhéllo ✓ 日本 👩\u200d💻 \u200c"
    assert escape_text(text) == text


def test_lone_carriage_return_is_shown() -> None:
    assert escape_text("safe\rrm -rf ~") == "safe\\rrm -rf ~"
    assert escape_text("end\r") == "end\\r"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("cellblock: timed out", "\\x63ellblock: timed out"),
        ("CellBlock: ok", "\\x43ellBlock: ok"),
        ("  [cellblock] progress", "  \\x5bcellblock] progress"),
        ("\u0441ellblock: cyrillic", "\\u0441ellblock: cyrillic"),
        ("ce11block: digits", "\\x63e11block: digits"),
        ("\uff43ellblock: fullwidth", "\\uff43ellblock: fullwidth"),
        ("cellblock", "\\x63ellblock"),
    ],
)
def test_program_lines_that_look_like_notes_are_marked(line: str, shown: str) -> None:
    assert program_output(f"ok\n{line}\nok") == f"ok\n{shown}\nok"


@pytest.mark.parametrize(
    "line", ["cellblock.yaml is here", "cellblocks", "my cellblock: run", "cell block:"]
)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert program_output(line) == line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_note_is_one_line_and_its_later_lines_cannot_pass_for_notes() -> None:
    out = io.StringIO()
    note("error: first\x1b[8m\ncellblock: forged", out)
    assert out.getvalue() == "cellblock: error: first\\x1b[8m\n\\x63ellblock: forged\n"


def test_note_tag_is_reverse_video_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    tty = _Terminal()
    note("timed out", tty)
    assert tty.getvalue() == "\x1b[7mcellblock:\x1b[27m timed out\n"
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    note("timed out", plain)
    assert plain.getvalue() == "cellblock: timed out\n"


def test_reader_reads_regular_files_and_symlinks_to_them(tmp_path: Path) -> None:
    real = tmp_path / "p.py"
    real.write_bytes(b"print(1)\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert read_regular_file(real) == read_regular_file(link) == b"print(1)\n"


def test_reader_refuses_a_fifo_even_with_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # A writer that keeps the FIFO open: the old reader would have read from it (or blocked).
    ready = threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_RDWR)  # O_RDWR: opens without waiting for a reader
        ready.set()
        os.write(fd, b"print('from the fifo')\n")
        threading.Event().wait(2)
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    ready.wait(10)
    with pytest.raises(NotRegularFileError, match="a FIFO"):
        read_regular_file(fifo)


def test_reader_keeps_the_os_error_for_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "absent")
    with pytest.raises(OSError) as exc:
        read_regular_file(tmp_path / ("x" * 5000))
    assert exc.value.strerror
