"""Showing untrusted text on a person's terminal: as text, never as terminal commands.

A program's output (and anything else it controls, such as names in findings) can carry control
sequences: OSC 52 writes the clipboard, OSC 0 sets the title, CSI moves the cursor or conceals
text (SGR 8), an 8-bit C1 CSI (U+009B) does the same in one character, a lone carriage return
overwrites a line, and bidi overrides reorder what is shown. :func:`escape_text` turns every such
character into a visible escape (``\\x1b``, ``\\x9b``, ``\\r``, ``\\u202e``), keeping newline,
tab and CR LF. :func:`program_output` also marks lines of the program's output that could pass
for cellblock's own notes, and :func:`note` writes those notes so that no program output can
imitate them (see the README, "What the terminal shows").
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from typing import TextIO

NOTE_PREFIX = "cellblock: "
# Lone CR (CR LF is harmless), and anything outside tab, newline and printable ASCII; the
# callback decides for the non-ASCII characters by their Unicode category.
_SUSPECT = re.compile(r"\r(?!\n)|[^\t\n\r\x20-\x7e]")
# "cellblock" as a word at the start (a file named cellblock.yaml is not a note).
_NOTE_LIKE = re.compile(r"[\[(<{\s]*cellblock(?![\w.-])")
# Lines that might: a first visible character that is c, C or not ASCII (look-alikes, wide forms,
# Unicode blanks). Only these pay for the full check, so long outputs stay fast.
_CANDIDATE = re.compile(r"(?m)^[ \t\[(<{]*(?:[cC]|[^\x00-\x7f])[^\n]*")
_JOINERS = frozenset("\u200c\u200d")  # zero-width (non-)joiners: part of emoji and scripts
# Letters that look like the ones in "cellblock" in common terminal fonts.
_LOOKALIKES = str.maketrans(
    {
        "\u0441": "c", "\u03f2": "c", "\u217d": "c",  # Cyrillic es, Greek lunate sigma, roman 100
        "\u0435": "e", "\u0454": "e",  # Cyrillic ie, ukrainian ie
        "\u04cf": "l", "\u0131": "l", "\u0399": "l", "\u0406": "l", "\u217c": "l",
        "1": "l", "|": "l", "i": "l",  # after casefold "I" is "i"
        "\u0432": "b", "\u0184": "b",  # Cyrillic ve (small-caps b), tone six
        "\u043e": "o", "\u03bf": "o", "0": "o",  # Cyrillic o, Greek omicron, zero
        "\u043a": "k", "\u03ba": "k",  # Cyrillic ka, Greek kappa
    }
)


@functools.lru_cache(maxsize=4096)
def _shown(char: str) -> str:
    if char == "\r":
        return "\\r"
    category = unicodedata.category(char)
    if category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and char not in _JOINERS):
        return _escape_always(char)
    return char


def _escape_always(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(text: str) -> str:
    """``text`` with every control, format and separator character shown as a visible escape.

    Kept: newline, tab, CR directly before a newline, and the zero-width joiners. Escaped: the
    other C0 controls (ESC included), DEL, the C1 controls (U+0080-U+009F, CSI U+009B among them),
    a lone CR, Unicode format characters (bidi overrides and isolates, zero-width spaces, tag
    characters), line and paragraph separators, and lone surrogates.
    """
    return _SUSPECT.sub(lambda m: _shown(m.group()), text)


def _looks_like_a_note(line: str) -> bool:
    head = line.lstrip()[:40]
    if not head.isascii():  # fold wide forms and accents, then look-alike letters
        head = "".join(
            c for c in unicodedata.normalize("NFKD", head) if not unicodedata.combining(c)
        )
    return _NOTE_LIKE.match(head.casefold().translate(_LOOKALIKES)) is not None


def program_output(text: str) -> str:
    """The program's output for a person: escaped, and no line can pass for a cellblock note.

    A line that begins (after blanks, brackets and look-alike letters) with "cellblock" has its
    first visible character escaped, so ``cellblock: timed out`` from the program is shown as
    ``\\x63ellblock: timed out``.
    """
    return _CANDIDATE.sub(_mark_note_like, escape_text(text))


def _mark_note_like(match: re.Match[str]) -> str:
    line = match.group()
    if not _looks_like_a_note(line):
        return line
    lead = len(line) - len(line.lstrip())
    return line[:lead] + _escape_always(line[lead]) + line[lead + 1 :]


def _styled(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return (
        bool(isatty and isatty())
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def note(message: str, stream: TextIO) -> None:
    """Write one of cellblock's own notes on a line of its own.

    The message is escaped too (it may quote the program), and none of its later lines can pass
    for another note. On a terminal the ``cellblock:`` tag is drawn in reverse video, which
    program output can never produce: its ESC characters are always shown escaped.
    """
    first, _, rest = message.partition("\n")
    text = escape_text(first) + ("\n" + program_output(rest) if rest else "")
    tag = NOTE_PREFIX.rstrip()
    if _styled(stream):
        tag = f"\x1b[7m{tag}\x1b[27m"
    stream.write(f"{tag} {text}\n")


class LiveOutput:
    """The program's output shown while it runs, by whole lines, so that the rules that judge a
    line (one that could pass for a note) see all of it; escaped like the output shown after a
    run."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._received: list[str] = []
        self._pending = ""

    def __call__(self, text: str) -> None:
        self._received.append(text)
        head, newline, self._pending = (self._pending + text).rpartition("\n")
        if newline:
            self._stream.write(program_output(head + newline))
            self._stream.flush()

    def finish(self, full: str | None) -> None:
        """Show what is still held or was never streamed (``full`` is the result's text), the
        last line ended so that cellblock's notes start on a line of their own."""
        received = "".join(self._received)
        rest = full[len(received) :] if full is not None and full.startswith(received) else ""
        self._received = [received + rest]
        text, self._pending = self._pending + rest, ""
        if text:
            shown = program_output(text)
            self._stream.write(shown if shown.endswith("\n") else shown + "\n")
            self._stream.flush()
