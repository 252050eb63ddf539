"""A one-line progress bar on stderr, drawn only when it is a terminal (or when asked)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO


class ProgressBar:
    WIDTH = 30

    def __init__(self, total: int, *, enabled: bool | None = None, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.total = total
        self.done = 0
        self.failed = 0
        self._last = 0.0
        self._drawn = False

    def update(
        self, *, done: int, failed: int, in_flight: Mapping[str, int], force: bool = False
    ) -> None:
        self.done, self.failed = done, failed
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return  # a terminal does not need more than ten frames a second
        self._last = now
        filled = self.WIDTH * done // self.total if self.total else self.WIDTH
        flight = " ".join(f"{name}:{n}" for name, n in sorted(in_flight.items()))
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.total}"
            + (f", {failed} failed" if failed else "")
            + (f"  in flight {flight}" if flight else "")
            + "\x1b[K"
        )
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
