"""The Docker side of a session: one fresh container (never from the pool), one channel."""

from __future__ import annotations

import base64
import contextlib
import json
import select
import threading
import time
from typing import Any

from cellblock.sandbox.docker import HOST_GRACE_S, PROTOCOL, DockerBackend, DockerCell
from cellblock.sandbox.errors import SandboxError
from cellblock.sandbox.files import Artifact, RefusedFile, check_name, shown
from cellblock.sandbox.interface import Limits
from cellblock.session.interface import (
    Download,
    FileEntry,
    OutputCallback,
    RawStep,
    SessionChannel,
    SessionClosedError,
    SessionError,
)

OP_TIMEOUT_S = 60.0  # file operations and closing


class DockerSessionChannel(SessionChannel):
    """A session container: created fresh for this session, claimed at once, removed at close."""

    def __init__(
        self, backend: DockerBackend, limits: Limits, *, idle_s: float, lifetime_s: float
    ) -> None:
        self._cell: DockerCell = backend.prepare(limits, kind="session")
        self._cell._used = True  # claimed: no one else can hand it a program
        self.container_id = self._cell.container_id or ""
        self.image_id = backend.image_id
        self.limits = limits
        self._ended: str | None = None
        self._lock = threading.Lock()
        self._lifetime_end = time.monotonic() + lifetime_s
        header: dict[str, Any] = {
            "v": PROTOCOL,
            "mode": "session",
            "code_len": 0,
            "stdin_len": 0,
            "idle_s": idle_s,
            "lifetime_s": lifetime_s,
        }
        if limits.runtime == "runsc":
            header["memory_budget"] = limits.memory_bytes + limits.swap_bytes
        try:
            self._send(header)
            ready = self._cell._read_frame(time.monotonic() + 30)
        except BaseException:
            self._cell.discard()
            raise
        if ready is None or ready.get("event") != "session_ready":
            self._cell.discard()
            raise SessionError(
                "the sandbox did not start a session; rebuild the image with "
                "`cellblock image build --force`"
            )

    @property
    def ended(self) -> str | None:
        """Why the session ended; notices an end the runner announced while nobody asked."""
        sock = self._cell._sock
        if self._ended is None and sock is not None and self._lock.acquire(blocking=False):
            try:
                if select.select([sock], [], [], 0)[0]:
                    frame = self._cell._read_frame(time.monotonic() + 1.0)
                    if frame is None:
                        self._finish("the sandbox ended")
                    elif frame.get("event") == "ended":
                        self._finish(str(frame.get("reason") or "ended"))
            except OSError:
                self._finish("the sandbox ended")
            finally:
                self._lock.release()
        return self._ended

    def _send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        sock = self._cell._sock
        if sock is None:
            raise SessionClosedError(f"the session has ended ({self._ended or 'closed'})")
        try:
            sock.sendall(json.dumps(header).encode() + b"\n" + payload)
        except OSError as exc:
            self._finish("the sandbox went away")
            raise SessionClosedError(f"the session has ended: {exc}") from exc

    def _check_open(self) -> None:
        if self._ended is not None:
            raise SessionClosedError(f"the session has ended ({self._ended}); open a new one")
        if time.monotonic() >= self._lifetime_end:
            self._finish("lifetime")
            raise SessionClosedError("the session reached its maximum lifetime; open a new one")

    def _frame(self, deadline: float) -> dict[str, Any]:
        frame = self._cell._read_frame(deadline)
        if frame is None:
            why = "host deadline" if time.monotonic() >= deadline else "the sandbox ended"
            self._finish(why)
            raise SessionClosedError(f"the session has ended ({why})")
        if frame.get("event") == "ended" and frame.get("reason"):
            self._finish(str(frame["reason"]))
        return frame

    def _finish(self, reason: str) -> None:
        if self._ended is None:
            self._ended = reason
        self._cell.discard()  # force-removes the container

    # -- steps ------------------------------------------------------------------------------

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
        with self._lock:
            self._check_open()
            raw = code.encode("utf-8", "surrogateescape")
            self._send(
                {
                    "op": "step",
                    "id": step_id,
                    "code_len": len(raw),
                    "timeout_s": timeout_s,
                    "grace_s": grace_s,
                    "stdout_cap": stdout_cap,
                    "stderr_cap": stderr_cap,
                    "value_cap": value_cap,
                },
                raw,
            )
            deadline = time.monotonic() + timeout_s + grace_s + HOST_GRACE_S + 5.0
            out = {"stdout": bytearray(), "stderr": bytearray()}
            caps = {"stdout": stdout_cap, "stderr": stderr_cap}
            callbacks = {"stdout": on_stdout, "stderr": on_stderr}
            figures: list[bytes] = []
            started = time.monotonic()
            while True:
                try:
                    frame = self._frame(deadline)
                except SessionClosedError:
                    return _lost_step(out, self._ended or "lost", time.monotonic() - started)
                event = frame.get("event")
                if event == "output" and frame.get("stream") in out:
                    stream = str(frame["stream"])
                    part = base64.b64decode(frame.get("data", ""))
                    room = caps[stream] - len(out[stream])
                    if room > 0:
                        out[stream] += part[:room]
                        callback = callbacks[stream]
                        if callback is not None:
                            with contextlib.suppress(Exception):
                                callback(part[:room].decode("utf-8", "replace"))
                elif event == "figure":
                    figures.append(base64.b64decode(frame.get("data", "")))
                elif event == "step_result":
                    ended = frame.get("session_ended")
                    result = RawStep(
                        outcome=str(frame.get("outcome")),
                        reported=frame.get("reported"),
                        exit_code=frame.get("exit_code"),
                        interrupted=bool(frame.get("interrupted")),
                        value=frame.get("value"),
                        value_truncated=bool(frame.get("value_truncated")),
                        oom_killed=bool(frame.get("oom_killed")),
                        duration_s=float(frame.get("duration_s") or 0.0),
                        cpu_time_s=frame.get("cpu_time_s"),
                        peak_memory_bytes=frame.get("peak_memory_bytes"),
                        stdout=bytes(out["stdout"]),
                        stderr=bytes(out["stderr"]),
                        stdout_bytes=int(frame.get("stdout_bytes") or 0),
                        stderr_bytes=int(frame.get("stderr_bytes") or 0),
                        figures=tuple(figures),
                        session_ended=ended,
                        figure_error=frame.get("figure_error"),
                    )
                    if ended:
                        with contextlib.suppress(SessionClosedError):
                            self._frame(time.monotonic() + 5.0)  # the "ended" frame
                        self._finish(str(ended))
                    return result
                elif event == "ended":
                    return _lost_step(out, self._ended or "ended", time.monotonic() - started)

    # -- files ------------------------------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self._check_open()
            self._send({"op": "put", "name": name, "len": len(data)}, data)
            frame = self._frame(time.monotonic() + OP_TIMEOUT_S)
            if frame.get("event") != "put_done":
                raise SessionError("the session did not confirm the upload")
            if not frame.get("ok"):
                raise SessionError(
                    f"could not upload {shown(name)}: {str(frame.get('error'))[:300]}"
                )

    def get(self, patterns: list[str], max_files: int, max_bytes: int) -> Download:
        with self._lock:
            self._check_open()
            self._send(
                {"op": "get", "patterns": patterns, "max_files": max_files, "max_bytes": max_bytes}
            )
            artifacts: list[Artifact] = []
            refused: list[RefusedFile] = []
            total = 0
            deadline = time.monotonic() + OP_TIMEOUT_S
            while True:
                frame = self._frame(deadline)
                if frame.get("event") == "file":
                    name = str(frame.get("name", ""))
                    data = base64.b64decode(frame.get("data", ""))
                    reason = check_name(name)
                    if reason is None and (
                        len(artifacts) >= max_files or total + len(data) > max_bytes
                    ):
                        reason = "over the caps for collected files"
                    if reason:
                        refused.append(RefusedFile(shown(name), reason))
                        continue
                    total += len(data)
                    artifacts.append(Artifact.from_bytes(name, data))
                elif frame.get("event") == "files_done":
                    for item in (frame.get("refused") or [])[:200]:
                        refused.append(
                            RefusedFile(str(item.get("name"))[:300], str(item.get("reason"))[:200])
                        )
                    if frame.get("error"):
                        refused.append(RefusedFile("*", str(frame["error"])[:300]))
                    return Download(tuple(artifacts), tuple(refused))
                else:
                    raise SessionError("the session answered a download with something else")

    def list(self) -> list[FileEntry]:
        with self._lock:
            self._check_open()
            self._send({"op": "list"})
            frame = self._frame(time.monotonic() + OP_TIMEOUT_S)
            if frame.get("event") != "listing" or not frame.get("ok"):
                raise SessionError("the session could not list its working directory")
            return [
                FileEntry(str(e.get("name"))[:300], int(e.get("size") or 0), str(e.get("kind")))
                for e in (frame.get("entries") or [])[:1000]
                if isinstance(e, dict)
            ]

    def close(self) -> str:
        with self._lock:
            if self._ended is None:
                try:
                    self._send({"op": "close"})
                    deadline = time.monotonic() + 10.0
                    while self._ended is None:
                        self._frame(deadline)
                except (SessionError, SandboxError, OSError):
                    pass
                if self._ended is None or self._ended == "closed":
                    self._ended = "closed"
            self._cell.discard()
            return self._ended


def _lost_step(out: dict[str, bytearray], why: str, took: float) -> RawStep:
    return RawStep(
        outcome="lost",
        reported=None,
        exit_code=None,
        interrupted=False,
        value=None,
        value_truncated=False,
        oom_killed=False,
        duration_s=round(took, 6),
        cpu_time_s=None,
        peak_memory_bytes=None,
        stdout=bytes(out["stdout"]),
        stderr=bytes(out["stderr"]),
        stdout_bytes=len(out["stdout"]),
        stderr_bytes=len(out["stderr"]),
        session_ended=why,
    )
