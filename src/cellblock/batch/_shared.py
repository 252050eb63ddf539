"""The opt-in ``shared`` cell mode: one hardened cell runs several programs of one batch in turn.

Each program gets its own uid; between programs the runner kills every process left, wipes the
writable directories and checks they are empty (``_runner_batch.py``), and the host sends the
next program only after the runner says the clean-up succeeded. Anything unusual (a failed
clean-up, a runner that did not report, an OOM kill, different limits, the cell's quota of
programs) retires the cell; the next program gets a fresh one. Every cell and every program's
place in it is recorded in the audit log (``batch.cell.opened``, ``batch.cell.assigned``,
``batch.cell.closed``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from cellblock.batch.interface import BatchError
from cellblock.sandbox.docker import DockerBackend, DockerCell, next_sandbox_uid
from cellblock.sandbox.errors import SandboxError
from cellblock.sandbox.interface import ExecutionResult, Limits, RunRequest

if TYPE_CHECKING:
    from cellblock.pipeline import Pipeline

CLEAN_REPORT_S = 20.0
IDLE_S = 120.0


class SharedCellError(BatchError, SandboxError):
    """A shared cell could not be used (and the program was not run in it)."""


class _NotClean(Exception):
    """The runner did not confirm the previous program's clean-up: retire the cell."""


class SharedCell(DockerCell):
    """A cell started with ``CELLBLOCK_SHARED=1``: its runner serves programs until hang-up."""

    def __init__(self, backend: DockerBackend, limits: Limits) -> None:
        super().__init__(backend, limits, idle_s=IDLE_S, shared=True)
        self.programs = 0
        self.broken = False
        # the runner checks first that the cell can be shared (seccomp enforced, /work sticky)
        frame = self._read_frame(time.monotonic() + CLEAN_REPORT_S)
        if frame is None or frame.get("event") != "shared" or not frame.get("ok"):
            self.close()
            why = (frame or {}).get("why") or "the runner did not say"
            raise SharedCellError(f"this cell cannot be shared: {why}")

    def run(self, request: RunRequest, uid: int) -> ExecutionResult:
        if self.programs:
            frame = self._read_frame(time.monotonic() + CLEAN_REPORT_S)
            if frame is None or frame.get("event") != "cleaned" or not frame.get("ok"):
                self.broken = True
                why = (frame or {}).get("why") or "no report"
                raise _NotClean(f"the previous program's clean-up was not confirmed ({why})")
        self.uid = uid
        self._output = {"stdout": bytearray(), "stderr": bytearray()}
        self._finished_cleanly = False
        t0 = time.monotonic()
        try:
            result = self._execute(request, t0, extra={"uid": uid, "await_hangup": False})
        except BaseException:
            self.broken = True
            raise
        self.programs += 1
        # without the runner's report, or after an OOM kill (the cgroup's OOM watch would then
        # speak for every later program), the cell is not used again
        if not self._finished_cleanly or result.oom_killed:
            self.broken = True
        return result

    def close(self) -> None:
        self._finished_cleanly = False  # always force-removed: nothing of it may linger
        self.discard()


class SharedCells:
    """One batch worker's current shared cell."""

    def __init__(self, pipeline: Pipeline, *, programs_per_cell: int, batch_id: str) -> None:
        self.pipeline = pipeline
        self.programs_per_cell = programs_per_cell
        self.batch_id = batch_id
        self.cell: SharedCell | None = None
        self.refused: str | None = None  # once a cell refused to be shared, do not retry

    def run(self, request: RunRequest, base: dict[str, Any]) -> ExecutionResult:
        limits = request.limits
        if limits.egress is not None:  # each program's connections must be its own, and audited
            raise SharedCellError(
                "a shared cell cannot use the network allowlist; run this batch with "
                "cell_mode='single'"
            )
        if not limits.read_only_root:
            raise SharedCellError(
                "a shared cell needs a read-only root file system (hardening.read_only_root); "
                "run this batch with cell_mode='single'"
            )
        cell = self.cell
        if cell is not None and cell.limits != limits:
            self._retire("the next program has other limits")
        elif cell is not None and cell.programs >= self.programs_per_cell:
            self._retire("it ran its quota of programs")
        for attempt in (1, 2):
            cell = self._cell(limits)
            uid = next_sandbox_uid()
            if uid == cell.uid:  # never the previous program's uid (the runner checks it too)
                uid = next_sandbox_uid()
            self.pipeline._record_batch(
                "batch.cell.assigned",
                {
                    **base,
                    "container_id": cell.container_id,
                    "position": cell.programs,
                    "uid": uid,
                },
            )
            try:
                result = cell.run(request, uid)
            except _NotClean as exc:
                self._retire(str(exc))
                if attempt == 2:
                    raise SharedCellError(str(exc)) from None
                continue
            if cell.broken:
                self._retire("the program did not end cleanly (no report, or an OOM kill)")
            return dataclasses.replace(result, pooled=False)
        raise SharedCellError("no shared cell could be used")  # pragma: no cover

    def _cell(self, limits: Limits) -> SharedCell:
        if self.refused is not None:
            raise SharedCellError(self.refused)
        if self.cell is None:
            backend = self.pipeline.backend
            if not isinstance(backend, DockerBackend):
                raise SharedCellError(
                    f"the {backend.name} backend has no shared cells; use cell_mode='single'"
                )
            backend.check_runtime(limits.runtime)
            try:
                self.cell = SharedCell(backend, limits)
            except SharedCellError as exc:
                self.refused = str(exc)
                raise
            self.pipeline._record_batch(
                "batch.cell.opened",
                {
                    "batch_id": self.batch_id,
                    "container_id": self.cell.container_id,
                    "runtime": limits.runtime,
                    "limits": limits.to_dict(),
                },
            )
        return self.cell

    def _retire(self, why: str) -> None:
        cell, self.cell = self.cell, None
        if cell is None:
            return
        cell.close()
        self.pipeline._record_batch(
            "batch.cell.closed",
            {
                "batch_id": self.batch_id,
                "container_id": cell.container_id,
                "programs": cell.programs,
                "why": why,
            },
        )

    def close(self) -> None:
        self._retire("the batch ended")
