"""The batch progress bar: drawn on stderr only when it is a terminal, never on a pipe."""

from __future__ import annotations

import io

from cellblock.batch._progress import TerminalProgress, default_progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_on_a_pipe_and_a_bar_on_a_terminal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert default_progress(None) is None
    assert default_progress(False) is None
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    assert isinstance(default_progress(None), TerminalProgress)

    term = FakeTerminal()
    bar = TerminalProgress(term, width=10)
    bar.start(4)
    for done in range(1, 5):
        bar.advance(done, failed=1 if done > 2 else 0)
    bar.finish()
    text = term.getvalue()
    assert "\r[##########] 4/4  1 failed" in text  # the last state is always drawn
    assert text.endswith("\r\x1b[K")  # and erased at the end: the results follow cleanly
