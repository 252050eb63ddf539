"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from cellblock.batch.interface import BatchProgress


class TerminalProgress(BatchProgress):
    """``[#####.....] 82/164  1 failed  12.3/s`` redrawn in place, at most 10 times a second."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._total = 0
        self._started = 0.0
        self._drawn_at = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def wanted(stream: TextIO | None = None) -> bool:
        s = stream if stream is not None else sys.stderr
        try:
            return s.isatty()
        except (AttributeError, ValueError):
            return False

    def start(self, total: int) -> None:
        self._total = total
        self._started = time.monotonic()

    def advance(self, done: int, failed: int) -> None:
        now = time.monotonic()
        with self._lock:
            if done < self._total and now - self._drawn_at < 0.1:
                return
            self._drawn_at = now
            filled = self.width * done // max(1, self._total)
            rate = done / max(1e-6, now - self._started)
            extra = f"  {failed} failed" if failed else ""
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self._total}"
                f"{extra}  {rate:.1f}/s\x1b[K"
            )
            self.stream.flush()

    def finish(self) -> None:
        with self._lock:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def default_progress(progress: BatchProgress | bool | None) -> BatchProgress | None:
    """``None``: a bar when stderr is a terminal; ``False``: none; ``True``: always."""
    if isinstance(progress, BatchProgress):
        return progress
    if progress is None:
        return TerminalProgress() if TerminalProgress.wanted() else None
    return TerminalProgress() if progress else None
