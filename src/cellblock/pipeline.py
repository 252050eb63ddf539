"""The guarded pipeline: assess, decide, (approve), run, record.

Every step is written to the audit log before the next one starts, and ``execution.started`` is
on disk before a container exists. If the log cannot record, no code runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from cellblock.assess import AssessConfig, Assessment, Level, assess
from cellblock.audit import (
    AuditLog,
    AuditWriteError,
    DirectoryWitness,
    default_private_key,
    default_public_key,
    ensure_keypair,
)
from cellblock.batch.interface import (
    BatchItem,
    BatchItemError,
    BatchProgress,
    BatchRunError,
    CellMode,
)
from cellblock.errors import CellblockError
from cellblock.policy import Decision, LoadedPolicy, Policy, PolicyError, load_policy
from cellblock.sandbox import ExecutionResult, Limits, Pool, RunRequest, SandboxError
from cellblock.sandbox._sandbox import decode_source, default_backend
from cellblock.sandbox.image import Progress
from cellblock.sandbox.interface import Backend


class PipelineError(CellblockError):
    """The pipeline could not complete a run."""


class AuditUnavailableError(PipelineError):
    """The audit log could not record a step, so no code was run (or its end was not recorded)."""

    def __init__(self, message: str, *, result: PipelineResult | None = None) -> None:
        super().__init__(message)
        self.result = result  # set when the program ran but its end could not be recorded


@dataclass(frozen=True)
class Approval:
    approved: bool
    by: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "by": self.by, "reason": self.reason}


@dataclass(frozen=True)
class ReviewRequest:
    """What an approver is asked to judge."""

    code: str
    assessment: Assessment | None
    decision: Decision


Approver = Callable[[ReviewRequest], "Approval | bool"]


@dataclass(frozen=True)
class PipelineResult:
    """The assessment, the decision and (unless blocked or refused) the execution result."""

    run_id: str
    code_sha256: str
    policy: str
    policy_digest: str
    assessment: Assessment | None
    decision: Decision
    approval: Approval | None
    execution: ExecutionResult | None

    @property
    def status(self) -> str:
        if self.execution is not None:
            return self.execution.status.value
        if self.decision.action == "block":
            return "blocked"
        return "not_approved"

    @property
    def ran(self) -> bool:
        return self.execution is not None

    def to_dict(self) -> dict[str, Any]:
        """``ExecutionResult`` fields at the top level (null when nothing ran), plus the rest."""
        data: dict[str, Any]
        if self.execution is not None:
            data = self.execution.to_dict()
        else:
            data = {f.name: None for f in dataclasses.fields(ExecutionResult)}
            data.update(
                stdout="",
                stderr="",
                stdout_truncated=False,
                stderr_truncated=False,
                timed_out=False,
                oom_killed=False,
            )
        data["status"] = self.status
        data["run_id"] = self.run_id
        data["code_sha256"] = self.code_sha256
        data["policy"] = {"name": self.policy, "digest": self.policy_digest}
        if self.assessment is not None:
            full = self.assessment.to_dict()
            data["assessment"] = {
                "level": full["level"],
                "findings": full["findings"],
                "skipped": False,
                **{k: v for k, v in full.items() if k not in ("level", "findings")},
            }
        else:
            data["assessment"] = {"level": None, "findings": [], "skipped": True}
        data["decision"] = {
            "action": self.decision.action,
            "profile": self.decision.profile,
            "reason": self.decision.reason,
            "level": self.decision.level,
        }
        data["approval"] = None if self.approval is None else self.approval.to_dict()
        return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _finding_summary(assessment: Assessment) -> list[dict[str, Any]]:
    keep = ("tool", "rule_id", "category", "severity", "confidence", "cwe", "line", "message")
    return [{k: f.to_dict().get(k) for k in keep} for f in assessment.findings]


def _cause(assessment: Assessment) -> str | None:
    """The rule that set the level, for the decision's reason."""
    if not assessment.findings:
        return None
    top = max(assessment.findings, key=lambda f: Level(f.severity).rank)
    return f"rule {top.rule_id} ({top.tool}, line {top.line})"


class Pipeline:
    """A reusable pipeline: one policy, one audit log, one backend (and pool when enabled)."""

    def __init__(
        self,
        policy: Policy | LoadedPolicy | str | Path | None = None,
        *,
        backend: Backend | None = None,
        audit_log: AuditLog | None = None,
        audit_dir: Path | None = None,
        progress: Progress | None = None,
        env: Mapping[str, str] | None = None,
        use_pool: bool | None = None,
    ) -> None:
        if isinstance(policy, LoadedPolicy):
            self.loaded: LoadedPolicy | None = policy
            self.policy = policy.policy
        elif isinstance(policy, Policy):
            self.loaded, self.policy = None, policy
        else:
            self.loaded = load_policy(policy, env=env)
            self.policy = self.loaded.policy
        self._backend = backend
        self._owns_backend = backend is None
        self._progress = progress
        self._pool: Pool | None = None
        # None follows the policy; a one-shot caller (the CLI) passes False: a pool only pays
        # off when the same pipeline runs many programs
        self._use_pool = use_pool
        self._lock = threading.Lock()
        self._owns_log = audit_log is None
        self.audit = audit_log if audit_log is not None else self._open_audit(audit_dir, env)
        self._announced = False
        # fixed for a Pipeline: canonical JSON + SHA-256 once, not on every run
        self._policy_digest = self.policy.digest()
        self._policy_loosenings = self.policy.loosenings()

    # -- setup ---------------------------------------------------------------------------------

    def _open_audit(self, audit_dir: Path | None, env: Mapping[str, str] | None) -> AuditLog:
        settings = self.policy.audit
        directory = audit_dir or settings.resolve_directory(env)
        key = settings.signing_key or default_private_key()
        if settings.signing_key is None:
            # first use: make the operator's key pair outside any sandbox (private file 0600);
            # safe when several runs start together: all end up using the same pair
            ensure_keypair(Path(key), default_public_key())
        witness = DirectoryWitness(settings.witness) if settings.witness else None
        try:
            return AuditLog.open(
                Path(directory), signing_key=Path(key), witness=witness, **settings.open_kwargs()
            )
        except AuditWriteError as exc:
            raise AuditUnavailableError(
                f"the audit log at {directory} cannot record ({exc}); no code will run until it can"
            ) from exc

    @property
    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                self._backend = default_backend(progress=self._progress)
                self._backend.reap()
            return self._backend

    def _pool_for(self) -> Pool | None:
        enabled = self.policy.pool.enabled if self._use_pool is None else self._use_pool
        if not enabled or self.policy.pool.size < 1:
            return None
        with self._lock:
            if self._pool is None:
                backend = self._backend
                assert backend is not None
                self._pool = Pool(
                    backend,
                    size=self.policy.pool.size,
                    idle_timeout_s=self.policy.pool.idle_timeout,
                )
            return self._pool

    def warm(self) -> None:
        """Start the pool for the policy's open profile (when the policy enables a pool)."""
        decision = self.policy.decide("none", runtimes=self.backend.runtimes())
        pool = self._pool_for()
        if pool is not None and decision.limits is not None:
            pool.warm(self._harden(decision.limits), wait=True)

    def _harden(self, limits: Limits) -> Limits:
        h = self.policy.hardening
        return limits.replace(
            read_only_root=h.read_only_root,
            no_new_privileges=h.no_new_privileges,
            seccomp=h.seccomp,
        )

    def _record(self, type_: str, payload: Mapping[str, Any]) -> None:
        try:
            self.audit.append(type_, payload)
        except AuditWriteError as exc:
            if self.policy.audit.required:
                raise AuditUnavailableError(
                    f"the audit log cannot record '{type_}' ({exc}); no code was run"
                ) from exc

    # -- the run -------------------------------------------------------------------------------

    def execute(
        self,
        code: str | bytes,
        *,
        stdin: bytes | None = None,
        approver: Approver | None = None,
        skip_assessment: bool = False,
        deep: bool | None = None,
        limits_override: Mapping[str, Any] | None = None,
    ) -> PipelineResult:
        """Assess, decide, ask for approval when needed, run, and record every step."""
        return self._execute(
            code,
            stdin=stdin,
            approver=approver,
            skip_assessment=skip_assessment,
            deep=deep,
            limits_override=limits_override,
        )

    def _execute(
        self,
        code: str | bytes,
        *,
        stdin: bytes | None = None,
        approver: Approver | None = None,
        skip_assessment: bool = False,
        deep: bool | None = None,
        limits_override: Mapping[str, Any] | None = None,
        batch: Mapping[str, Any] | None = None,
        run: Callable[[RunRequest, dict[str, Any]], ExecutionResult] | None = None,
        assessed: Assessment | None = None,
    ) -> PipelineResult:
        text = decode_source(code)
        raw = text.encode("utf-8", "surrogateescape")
        run_id = uuid.uuid4().hex
        digest = _sha256(raw)
        # a batch's programs carry its id and their place in it in every record
        base = {"run_id": run_id, "code_sha256": digest, **(batch or {})}
        policy_name = self.policy.name
        policy_digest = self._policy_digest
        self._announce()

        # 1. assess
        assessment: Assessment | None = None
        cause: str | None
        if skip_assessment:
            if not self.policy.assessment.allow_skip:
                raise PolicyError(
                    f"policy {policy_name!r} does not allow skipping the assessment "
                    "(assessment.allow_skip is false)"
                )
            self._record(
                "assessment.skipped", {**base, "by": getpass.getuser(), "policy": policy_name}
            )
            level = "none"
            cause = "assessment skipped (allowed by assessment.allow_skip)"
        else:
            if assessed is not None and assessed.code_sha256 == digest:
                assessment = assessed  # a batch assessed these very bytes in a helper process
            else:
                assessment = assess(raw, config=self._assess_config(), deep=deep)
            self._record(
                "assessment",
                {
                    **base,
                    "code_bytes": len(raw),
                    "level": assessment.level.value,
                    "findings": _finding_summary(assessment),
                    "analyzers": list(assessment.analyzers_run),
                    "errors": dict(assessment.errors),
                    "timings_ms": dict(assessment.timings_ms),
                },
            )
            level = assessment.level.value
            cause = _cause(assessment)

        # 2. decide
        runtimes = None if self._needs_no_engine(level) else self.backend.runtimes()
        decision = self.policy.decide(level, runtimes=runtimes, cause=cause)
        limits = None
        if decision.limits is not None:
            limits = self._harden(decision.limits)
            if limits_override:
                # the caller may only tighten what the policy allows
                limits = limits.tighten(limits.replace(**dict(limits_override)))
            decision = dataclasses.replace(decision, limits=limits)
        self._record(
            "decision",
            {
                **base,
                "level": level,
                "action": decision.action,
                "profile": decision.profile,
                "reason": decision.reason,
                "limits": None if limits is None else limits.to_dict(),
                "policy": policy_name,
                "policy_digest": policy_digest,
                "loosenings": self._policy_loosenings
                + ([] if limits is None else [f"limits.{name}" for name in limits.loosenings()]),
            },
        )

        def finish(approval: Approval | None, execution: ExecutionResult | None) -> PipelineResult:
            return PipelineResult(
                run_id,
                digest,
                policy_name,
                policy_digest,
                assessment,
                decision,
                approval,
                execution,
            )

        if decision.action == "block":
            return finish(None, None)

        # 3. review
        approval: Approval | None = None
        if decision.action == "review":
            approval = self._ask(approver, ReviewRequest(text, assessment, decision))
            self._record("approval", {**base, **approval.to_dict()})
            if not approval.approved:
                return finish(approval, None)

        # 4. run
        assert limits is not None
        request = RunRequest(code=text, limits=limits, stdin=stdin)
        backend = self.backend
        self._record(
            "execution.started",
            {
                **base,
                "limits": limits.to_dict(),
                "runtime": limits.runtime,
                "backend": backend.name,
                "stdin_sha256": _sha256(stdin or b""),
            },
        )  # durable: on disk before any container exists
        started = time.monotonic()
        try:
            if run is not None:  # a batch's shared cell (opt-in, see docs/batch.md)
                execution = run(request, base)
            else:
                pool = self._pool_for()
                execution = pool.run(request) if pool is not None else backend.run(request)
        except SandboxError as exc:
            self._record(
                "execution.failed",
                {**base, "error": str(exc), "after_s": round(time.monotonic() - started, 6)},
            )
            raise
        result = finish(approval, execution)
        try:
            self.audit.append("execution.finished", {**base, **_execution_summary(execution)})
        except AuditWriteError as exc:
            raise AuditUnavailableError(
                f"the program ran but the audit log could not record its end ({exc}); "
                "the result is attached to this error",
                result=result,
            ) from exc
        return result

    def _assess_config(self) -> AssessConfig:
        return AssessConfig.from_dict(
            {
                "deep": self.policy.assessment.deep,
                "rule_levels": dict(self.policy.assessment.rule_levels),
                "category_levels": dict(self.policy.assessment.category_levels),
            }
        )

    def _announce(self) -> None:
        with self._lock:
            if self._announced:
                return
            self._announced = True
        self._record(
            "policy.loaded",
            {
                "policy": self.policy.name,
                "digest": self._policy_digest,
                "origin": self.loaded.to_dict() if self.loaded else None,
                "loosenings": self._policy_loosenings,
            },
        )

    # -- batches -------------------------------------------------------------------------------

    def execute_many(
        self,
        programs: Iterable[BatchItem | str | bytes],
        *,
        concurrency: int | None = None,
        progress: BatchProgress | bool | None = None,
        cell_mode: CellMode = "single",
        programs_per_cell: int = 32,
        approver: Approver | None = None,
        skip_assessment: bool = False,
        deep: bool | None = None,
        limits_override: Mapping[str, Any] | None = None,
    ) -> list[PipelineResult | BatchItemError]:
        """Run many programs, each assessed, decided, run and recorded on its own.

        Returns one outcome per program in the given order: its :class:`PipelineResult` (a
        program that fails or times out is a result), or a :class:`BatchItemError` when it
        could not be run. ``concurrency`` programs are in flight at once (default: the number
        of cores). ``progress``: a bar on stderr when it is a terminal (default), ``False`` for
        none. ``cell_mode="shared"`` (opt-in) lets one hardened cell run up to
        ``programs_per_cell`` of these programs one after another; see docs/batch.md.
        """
        from cellblock.batch._executor import as_items, run_batch

        self._announce()
        return run_batch(
            self,
            as_items(programs),
            concurrency=concurrency,
            progress=progress,
            cell_mode=cell_mode,
            programs_per_cell=programs_per_cell,
            execute_kwargs={
                "approver": approver,
                "skip_assessment": skip_assessment,
                "deep": deep,
                "limits_override": limits_override,
            },
        )

    def map(
        self,
        codes: Iterable[BatchItem | str | bytes],
        *,
        stdin: Sequence[bytes | None] | None = None,
        concurrency: int | None = None,
        progress: BatchProgress | bool | None = None,
        cell_mode: CellMode = "single",
        programs_per_cell: int = 32,
        approver: Approver | None = None,
        skip_assessment: bool = False,
        deep: bool | None = None,
        limits_override: Mapping[str, Any] | None = None,
    ) -> list[PipelineResult]:
        """Like :meth:`execute_many`, but every outcome is a :class:`PipelineResult`: if any
        program could not be run, :class:`~cellblock.batch.BatchRunError` is raised once the
        batch is over, carrying every outcome."""
        from cellblock.batch._executor import as_items

        outcomes = self.execute_many(
            as_items(codes, stdin),
            concurrency=concurrency,
            progress=progress,
            cell_mode=cell_mode,
            programs_per_cell=programs_per_cell,
            approver=approver,
            skip_assessment=skip_assessment,
            deep=deep,
            limits_override=limits_override,
        )
        errors = [o for o in outcomes if isinstance(o, BatchItemError)]
        if errors:
            first = errors[0]
            raise BatchRunError(
                f"{len(errors)} of {len(outcomes)} programs could not be run; the first "
                f"(#{first.index}): {first}",
                outcomes=outcomes,
            )
        return [o for o in outcomes if not isinstance(o, BatchItemError)]

    def _record_batch(self, type_: str, payload: Mapping[str, Any]) -> None:
        self._record(type_, payload)

    def _batch_cells(self, cell_mode: CellMode, programs_per_cell: int, batch_id: str) -> Any:
        """A worker's shared cells (``shared`` mode), or None: each program gets its own."""
        if cell_mode != "shared":
            return None
        from cellblock.batch._shared import SharedCells

        return SharedCells(self, programs_per_cell=programs_per_cell, batch_id=batch_id)

    def _needs_no_engine(self, level: str) -> bool:
        return self.policy.decisions.model_dump().get(level) == "block"

    def _ask(self, approver: Approver | None, request: ReviewRequest) -> Approval:
        if approver is None:
            return Approval(False, by="nobody", reason="review required and no approver was given")
        try:
            answer = approver(request)
        except Exception as exc:  # an approver that fails says no
            return Approval(False, by="approver", reason=f"the approver failed: {exc}")
        if isinstance(answer, Approval):
            return answer
        return Approval(bool(answer), by=getattr(approver, "__name__", "approver"))

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._backend is not None and self._owns_backend:
            self._backend.close()
        if self._owns_log:
            try:
                self.audit.close()
            except AuditWriteError as exc:
                raise AuditUnavailableError(
                    f"the audit log could not write its closing checkpoint ({exc})"
                ) from exc

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # an error is already on its way out: do not hide it behind a second one
        with contextlib.suppress(CellblockError):
            self.close()


def _execution_summary(r: ExecutionResult) -> dict[str, Any]:
    return {
        "status": r.status.value,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "timed_out": r.timed_out,
        "oom_killed": r.oom_killed,
        "duration_s": r.duration_s,
        "total_s": r.total_s,
        "cpu_time_s": r.cpu_time_s,
        "peak_memory_bytes": r.peak_memory_bytes,
        "stdout_sha256": _sha256(r.stdout.encode("utf-8", "surrogateescape")),
        "stderr_sha256": _sha256(r.stderr.encode("utf-8", "surrogateescape")),
        "stdout_bytes": r.stdout_bytes,
        "stderr_bytes": r.stderr_bytes,
        "stdout_truncated": r.stdout_truncated,
        "stderr_truncated": r.stderr_truncated,
        "limits": r.limits.to_dict(),
        "image_id": r.image_id,
        "runtime": r.runtime,
        "container_id": r.container_id,
        "pooled": r.pooled,
        "error": r.error,
    }


def execute(
    code: str | bytes,
    *,
    policy: Policy | LoadedPolicy | str | Path | None = None,
    approver: Approver | None = None,
    stdin: bytes | None = None,
    skip_assessment: bool = False,
    backend: Backend | None = None,
    audit_dir: Path | None = None,
) -> PipelineResult:
    """One guarded run: assess, decide, approve, run and record. See :class:`Pipeline`."""
    with Pipeline(policy, backend=backend, audit_dir=audit_dir) as pipeline:
        return pipeline.execute(
            code, stdin=stdin, approver=approver, skip_assessment=skip_assessment
        )
