"""The session contract: limits, step results, file listings, and the engine-side channel.

A session is one fresh hardened container with a persistent interpreter, used by exactly one
:class:`~cellblock.session.Session` and destroyed when it closes. Every step still goes through
the pipeline (assess, decide, record); the channel below only carries what the pipeline allowed.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellblock.errors import CellblockError
from cellblock.sandbox.files import Artifact, RefusedFile


class SessionError(CellblockError):
    """Base of every session error."""


class SessionClosedError(SessionError):
    """The session has ended (closed, idle, lifetime reached, or its interpreter died)."""


class SessionLimitsError(SessionError, ValueError):
    """A session limit has an invalid value."""

    exit_code = 64


@dataclass(frozen=True)
class SessionLimits:
    """Time bounds of a session. Memory, pids and CPU come from the policy's limits and bound the
    whole session (one container). ``step_timeout_s`` None means the policy's ``timeout``.

    A step that overruns its timeout is interrupted (SIGINT, ``KeyboardInterrupt``); if the
    interpreter is back within ``interrupt_grace_s`` the state is kept and the step says
    ``interrupted``, otherwise the session ends and the step says ``timeout``."""

    step_timeout_s: float | None = None
    idle_timeout_s: float = 300.0
    max_lifetime_s: float = 3600.0
    interrupt_grace_s: float = 2.0
    value_bytes: int = 64 * 1024  # the last expression's repr is cut here

    def __post_init__(self) -> None:
        for name in ("idle_timeout_s", "max_lifetime_s", "interrupt_grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SessionLimitsError(f"{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or not 0.1 <= value <= 7 * 24 * 3600:
                raise SessionLimitsError(f"{name} must be between 0.1 and 604800, got {value!r}")
        if self.step_timeout_s is not None and not 0.1 <= self.step_timeout_s <= 24 * 3600:
            raise SessionLimitsError(
                f"step_timeout_s must be between 0.1 and 86400, got {self.step_timeout_s!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Step statuses: the sandbox's own words plus what only a session or the pipeline can say.
STEP_STATUSES = (
    "ok",  # ran to the end
    "error",  # raised an exception (the traceback is on stderr); the session goes on
    "exit",  # raised SystemExit (exit_code says which); the session goes on
    "interrupted",  # overran its timeout, stopped by KeyboardInterrupt; state kept
    "timeout",  # overran and did not stop within the grace period: the session ended
    "oom",  # the session went over its memory budget: the session ended
    "killed",  # the interpreter died (os._exit, a signal): the session ended
    "blocked",  # the policy blocked this step; nothing ran, the session goes on
    "not_approved",  # review was required and not given; nothing ran
    "refused",  # the decision needs a stricter sandbox than this session's; nothing ran
)


@dataclass(frozen=True)
class StepResult:
    """What one step did. ``session_ended`` says why the session ended with it (else None)."""

    step: int
    status: str
    run_id: str
    code_sha256: str
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    value: str | None = None  # repr of the last expression's value (like a REPL), cut
    value_truncated: bool = False
    exit_code: int | None = None  # for status "exit"
    duration_s: float = 0.0
    cpu_time_s: float | None = None
    peak_memory_bytes: int | None = None  # of the whole session so far
    artifacts: tuple[Artifact, ...] = ()  # figures the step drew, as PNG
    session_ended: str | None = None
    reason: str | None = None  # why it was blocked/refused, or what went wrong
    decision: dict[str, Any] | None = None
    assessment: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def ran(self) -> bool:
        return self.status not in ("blocked", "not_approved", "refused")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["artifacts"] = [a.to_dict() for a in self.artifacts]
        return data


@dataclass(frozen=True)
class FileEntry:
    """One entry of the session's working directory (name shown escaped)."""

    name: str
    size: int
    kind: str  # file, dir, symlink, other

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Download:
    """Files brought back from a session, and those refused with the reason."""

    artifacts: tuple[Artifact, ...] = ()
    refused: tuple[RefusedFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifacts": [a.to_dict() for a in self.artifacts],
            "files_refused": [r.to_dict() for r in self.refused],
        }


OutputCallback = Callable[[str], None]


@dataclass(frozen=True)
class RawStep:
    """What the channel saw of one step, before the pipeline wraps it."""

    outcome: str  # reported, died, timeout, protocol, oom, host
    reported: str | None  # the interpreter's own word: ok, error, interrupted, exit
    exit_code: int | None
    interrupted: bool
    value: str | None
    value_truncated: bool
    oom_killed: bool
    duration_s: float
    cpu_time_s: float | None
    peak_memory_bytes: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    stderr_bytes: int
    figures: tuple[bytes, ...] = field(default=())
    session_ended: str | None = None
    figure_error: str | None = None


class SessionChannel(ABC):
    """One session's container, seen from the host. Implementations: Docker."""

    container_id: str
    image_id: str

    @abstractmethod
    def step(
        self,
        step_id: int,
        code: str,
        *,
        timeout_s: float,
        grace_s: float,
        stdout_cap: int,
        stderr_cap: int,
        value_cap: int,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RawStep:
        """Run one step in the persistent interpreter."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Write one file into the working directory (as the sandbox user)."""

    @abstractmethod
    def get(self, patterns: list[str], max_files: int, max_bytes: int) -> Download:
        """Bring back regular files matching the patterns."""

    @abstractmethod
    def list(self) -> list[FileEntry]:
        """The working directory's entries."""

    @abstractmethod
    def close(self) -> str:
        """End the session and remove its container; return why it ended. Idempotent."""

    @property
    @abstractmethod
    def ended(self) -> str | None:
        """Why the session ended, or None while it lives."""
