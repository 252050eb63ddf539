"""Per-token quotas: runs in flight and runs started in the last 60 seconds (sliding window)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from cellblock.service.interface import QuotaExceededError, Quotas

WINDOW_S = 60.0


class QuotaTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._started: dict[str, deque[float]] = {}

    @contextmanager
    def slot(self, subject: str, quotas: Quotas) -> Iterator[None]:
        """Hold one run slot; :class:`QuotaExceededError` (with a retry delay) when over quota."""
        self.acquire(subject, quotas)
        try:
            yield
        finally:
            self.release(subject)

    def acquire(self, subject: str, quotas: Quotas) -> None:
        """Take one slot (a run, or a session for its whole life) until :meth:`release`."""
        now = time.monotonic()
        with self._lock:
            started = self._started.setdefault(subject, deque())
            while started and now - started[0] >= WINDOW_S:
                started.popleft()
            if self._running.get(subject, 0) >= quotas.max_concurrent:
                raise QuotaExceededError(
                    f"this token already has {quotas.max_concurrent} runs or sessions in flight "
                    "(its max_concurrent quota); wait for one to finish or close a session",
                    retry_after_s=1,
                    quota="max_concurrent",
                )
            if len(started) >= quotas.runs_per_minute:
                wait = max(1, math.ceil(WINDOW_S - (now - started[0])))
                raise QuotaExceededError(
                    f"this token started {quotas.runs_per_minute} runs in the last minute "
                    f"(its runs_per_minute quota); retry in {wait}s",
                    retry_after_s=wait,
                    quota="runs_per_minute",
                )
            started.append(now)
            self._running[subject] = self._running.get(subject, 0) + 1

    def release(self, subject: str) -> None:
        with self._lock:
            self._running[subject] -= 1

    def running(self) -> int:
        with self._lock:
            return sum(self._running.values())
