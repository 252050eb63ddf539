"""Sessions for service callers: owned by one identity, counted against its concurrency quota.

A caller sees only its own sessions: another caller's id answers exactly as an unknown one
(never revealing that it exists). A session holds one of the caller's ``max_concurrent`` slots
for its whole life. Idle and lifetime limits apply (the session's container enforces them);
every session ends when the server drains, and its container with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cellblock.errors import CellblockError
from cellblock.pipeline import Approver
from cellblock.sandbox.files import FileCaps
from cellblock.service._core import ServiceCore, check_files
from cellblock.service._packages import check_image
from cellblock.service.interface import (
    Identity,
    RequestFieldError,
    ServiceError,
    ShuttingDownError,
)
from cellblock.session import Session, SessionLimits
from cellblock.session.interface import Download, StepResult

# a caller may shorten these, never lengthen them
MAX_IDLE_S = SessionLimits().idle_timeout_s
MAX_LIFETIME_S = SessionLimits().max_lifetime_s
SWEEP_S = 2.0  # how often ended sessions are forgotten and their quota slots freed


class SessionNotFoundError(ServiceError):
    """No session with this id for this caller (HTTP 404; an MCP tool error)."""


@dataclass
class _Entry:
    session: Session
    identity: Identity
    opened_at: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one operation at a time

    def to_dict(self) -> dict[str, Any]:
        s = self.session
        return {
            "session_id": s.id,
            "kind": "session",
            "owner": self.identity.subject,
            "image": s.image,
            "alive": s.alive,
            "opened_at": self.opened_at,
            "age_s": round(time.time() - self.opened_at, 3),
            "limits": s.session_limits.to_dict(),
        }


class SessionRegistry:
    """The live sessions of one server, by id, each with its owner."""

    def __init__(self, core: ServiceCore) -> None:
        self.core = core
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._closing = False
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- opening and finding -----------------------------------------------------------------

    def open(
        self,
        identity: Identity,
        *,
        image: str | None = None,
        idle_timeout_s: float | None = None,
        max_lifetime_s: float | None = None,
        step_timeout_s: float | None = None,
    ) -> dict[str, Any]:
        if self._closing or self.core.draining:
            raise ShuttingDownError("the server is shutting down and opens no new sessions")
        self.sweep()
        check_image(self.core.loaded_policy(identity.policy).policy, image)
        limits = SessionLimits(
            step_timeout_s=step_timeout_s,
            idle_timeout_s=min(idle_timeout_s or MAX_IDLE_S, MAX_IDLE_S),
            max_lifetime_s=min(max_lifetime_s or MAX_LIFETIME_S, MAX_LIFETIME_S),
        )
        pipeline = self.core.pipeline_for(identity.policy)
        if image is not None:
            self.core._require_image(pipeline, image)
        caps = FileCaps(max_bytes=min(FileCaps().max_bytes, identity.quotas.max_request_bytes))
        out_cap = identity.quotas.max_output_bytes
        self.core.quotas.acquire(identity.subject, identity.quotas)
        try:
            session = pipeline.session(
                image=image,
                limits=limits,
                limits_override={"stdout_bytes": out_cap, "stderr_bytes": out_cap},
                file_caps=caps,
            )
        except BaseException:
            self.core.quotas.release(identity.subject)
            raise
        entry = _Entry(session, identity)
        with self._lock:
            self._entries[session.id] = entry
            if self._sweeper is None:  # frees the slots of sessions that idle out
                self._sweeper = threading.Thread(
                    target=self._sweep_loop, name="cellblock-session-sweep", daemon=True
                )
                self._sweeper.start()
        self._record("opened", entry)
        if self._closing:  # the drain began while the container started
            self._end(entry, "server shutdown")
            raise ShuttingDownError("the server is shutting down and opens no new sessions")
        return entry.to_dict()

    def _get(self, identity: Identity, session_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(session_id)
        # another caller's session answers exactly as an unknown id
        if entry is None or entry.identity.subject != identity.subject:
            raise SessionNotFoundError(
                f"no open session {session_id[:64]!r} for this caller; open one first "
                "(an ended session is gone)"
            )
        if not entry.session.alive:
            self._end(entry, "ended")
            raise SessionNotFoundError(
                f"the session {session_id[:64]!r} has ended (idle, lifetime or its "
                "interpreter stopped); open a new one"
            )
        return entry

    def list_sessions(self, identity: Identity | None = None) -> list[dict[str, Any]]:
        """Live sessions (``identity``'s only when given)."""
        self.sweep()
        with self._lock:
            entries = list(self._entries.values())
        return [
            e.to_dict()
            for e in entries
            if identity is None or e.identity.subject == identity.subject
        ]

    # -- operations ---------------------------------------------------------------------------

    def step(
        self,
        identity: Identity,
        session_id: str,
        code: str,
        *,
        timeout_s: float | None = None,
        approver: Approver | None = None,
    ) -> StepResult:
        if self._closing or self.core.draining:
            raise ShuttingDownError("the server is shutting down and runs no new steps")
        entry = self._get(identity, session_id)
        with entry.lock:
            result = entry.session.run(code, timeout=timeout_s, approver=approver)
        if result.session_ended:
            self._end(entry, result.session_ended)
        return result

    def upload(
        self, identity: Identity, session_id: str, files: Mapping[str, bytes]
    ) -> list[dict[str, Any]]:
        inputs = check_files(files, identity.quotas.max_request_bytes)
        if not inputs:
            raise RequestFieldError(
                "field 'files': give at least one file", field="files", kind="empty"
            )
        entry = self._get(identity, session_id)
        with entry.lock:
            return entry.session.upload(inputs)

    def download(self, identity: Identity, session_id: str, patterns: list[str]) -> Download:
        entry = self._get(identity, session_id)
        with entry.lock:
            return entry.session.download(patterns)

    def files(self, identity: Identity, session_id: str) -> list[dict[str, Any]]:
        entry = self._get(identity, session_id)
        with entry.lock:
            return [f.to_dict() for f in entry.session.list_files()]

    def close(self, identity: Identity, session_id: str) -> dict[str, Any]:
        entry = self._get(identity, session_id)
        return {"session_id": session_id, "closed": self._end(entry, "closed")}

    # -- ending -------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Forget (and release the slots of) sessions that ended by themselves."""
        with self._lock:
            ended = [e for e in self._entries.values() if not e.session.alive]
        for entry in ended:
            self._end(entry, "ended")

    def _sweep_loop(self) -> None:
        while not self._stop.wait(SWEEP_S):
            with contextlib.suppress(Exception):
                self.sweep()

    def _end(self, entry: _Entry, reason: str) -> str:
        with self._lock:
            if self._entries.pop(entry.session.id, None) is None:
                return reason  # another thread ended it
        try:
            why = entry.session.close(reason)
        except CellblockError as exc:
            why = f"{reason} (close failed: {exc})"
        finally:
            self.core.quotas.release(entry.identity.subject)
        self._record("closed", entry, reason=why)
        return why

    def close_all(self, reason: str = "server shutdown") -> int:
        """End every session (the server is draining); return how many."""
        self._closing = True
        self._stop.set()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            self._end(entry, reason)
        return len(entries)

    def _record(self, what: str, entry: _Entry, **extra: Any) -> None:
        # the pipeline records the session itself; this ties it to the caller
        with contextlib.suppress(CellblockError):
            self.core.audit.append(
                f"service.session.{what}",
                {
                    "session_id": entry.session.id,
                    "caller": entry.identity.to_audit(),
                    "image": entry.session.image,
                    **extra,
                },
            )
