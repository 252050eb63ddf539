"""``Session``: a persistent interpreter in one fresh hardened container, every step guarded."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cellblock.sandbox._sandbox import decode_source
from cellblock.sandbox.files import Artifact, FileCaps, FileSpec, collect_patterns, input_files
from cellblock.sandbox.interface import Limits
from cellblock.session.interface import (
    Download,
    FileEntry,
    OutputCallback,
    RawStep,
    SessionChannel,
    SessionClosedError,
    SessionError,
    SessionLimits,
    StepResult,
)

if TYPE_CHECKING:
    from cellblock.pipeline import Approver, Pipeline
    from cellblock.policy import LoadedPolicy, Policy

# The container's own bounds: a step whose decision asks for anything stricter than these does
# not run in this session (a stricter session can be opened with limits_override).
_CONTAINER_FIELDS = (
    "cpus", "memory_bytes", "swap_bytes", "pids", "nofile", "tmpfs_bytes", "tmp_bytes",
    "runtime", "read_only_root", "no_new_privileges", "seccomp", "network",
)  # fmt: skip


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Session:
    """A notebook-like sequence of steps sharing one interpreter, in one fresh hardened container.

    >>> with Session() as s:                                  # doctest: +SKIP
    ...     s.run("import statistics; xs = [1, 2, 3]")
    ...     s.run("statistics.mean(xs)").value
    '2'

    Every step is assessed, decided and recorded like a one-shot run; a blocked step does not
    end the session. The container is never shared: it is created for this session (not taken
    from the pool) and removed when the session closes, its owner dies, or it is reaped.
    """

    def __init__(
        self,
        policy: Policy | LoadedPolicy | str | Path | None = None,
        *,
        pipeline: Pipeline | None = None,
        limits: SessionLimits | None = None,
        limits_override: Mapping[str, Any] | None = None,
        approver: Approver | None = None,
        audit_dir: Path | None = None,
        file_caps: FileCaps | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        image: str | None = None,
    ) -> None:
        from cellblock.pipeline import Pipeline

        self._owns_pipeline = pipeline is None
        self.pipeline = pipeline if pipeline is not None else Pipeline(policy, audit_dir=audit_dir)
        self.session_limits = limits or SessionLimits()
        self.approver = approver
        self.file_caps = file_caps or FileCaps()
        self.on_stdout, self.on_stderr = on_stdout, on_stderr
        self.id = uuid.uuid4().hex
        self.image_request = image  # an image profile (``data``...) the policy permits
        self._steps = 0
        self._lock = threading.Lock()
        self._closed_reason: str | None = None
        self._opened_at = time.monotonic()
        try:
            self.limits = self._container_limits(limits_override)
            self._channel = self._open_channel()
        except BaseException:
            if self._owns_pipeline:
                with contextlib.suppress(Exception):
                    self.pipeline.close()
            raise

    # -- opening --------------------------------------------------------------------------

    def _container_limits(self, override: Mapping[str, Any] | None) -> Limits:
        pipe = self.pipeline
        decision = pipe.policy.decide("none", runtimes=pipe.backend.runtimes())
        if decision.limits is None:
            raise SessionError(
                f"policy {pipe.policy.name!r} runs nothing (it blocks even level none); "
                "a session needs a policy that allows code to run"
            )
        from cellblock._images import chosen_image, modules_for

        self.image = chosen_image(pipe.policy, decision.profile or "", self.image_request)
        self.modules = modules_for(pipe.policy, self.image)
        limits = pipe._harden(decision.limits)
        if override:
            limits = limits.tighten(limits.replace(**dict(override)))
        return limits

    def _open_channel(self) -> SessionChannel:
        from cellblock.sandbox.docker import DockerBackend
        from cellblock.session._docker import DockerSessionChannel

        backend = self.pipeline._backend_for(self.image)
        if not isinstance(backend, DockerBackend):
            raise SessionError(f"sessions need the Docker backend, not {backend.name!r}")
        sl = self.session_limits
        self.pipeline._record(
            "session.opened",
            {
                "session_id": self.id,
                "policy": self.pipeline.policy.name,
                "policy_digest": self.pipeline.policy.digest(),
                "limits": self.limits.to_dict(),
                "session_limits": sl.to_dict(),
                "image": backend.image,
                "image_profile": self.image,
                "image_id": backend.image_id,
            },
        )  # durable before the container exists
        channel = DockerSessionChannel(
            backend, self.limits, idle_s=sl.idle_timeout_s, lifetime_s=sl.max_lifetime_s
        )
        self.pipeline._record(
            "session.started", {"session_id": self.id, "container_id": channel.container_id}
        )
        return channel

    # -- steps ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._closed_reason is None and self._channel.ended is None

    def run(
        self,
        code: str | bytes,
        *,
        timeout: float | None = None,
        approver: Approver | None = None,
        skip_assessment: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> StepResult:
        """Assess, decide and run one step in the session's interpreter; record every part."""
        with self._lock:
            self._require_open()
            self._steps += 1
            step = self._steps
        text = decode_source(code)
        guard = _StepGuard(self, step, text)
        verdict = guard.decide(approver or self.approver, skip_assessment)
        if verdict is not None:
            return verdict
        limits = guard.limits
        assert limits is not None
        step_timeout = min(limits.timeout_s, timeout or limits.timeout_s)
        if self.session_limits.step_timeout_s is not None:
            step_timeout = min(step_timeout, self.session_limits.step_timeout_s)
        self.pipeline._record(
            "session.step.started",
            {**guard.base, "timeout_s": step_timeout, "code_bytes": len(guard.raw)},
        )
        raw = self._channel.step(
            step,
            text,
            timeout_s=step_timeout,
            grace_s=self.session_limits.interrupt_grace_s,
            stdout_cap=limits.stdout_bytes,
            stderr_cap=limits.stderr_bytes,
            value_cap=self.session_limits.value_bytes,
            on_stdout=on_stdout or self.on_stdout,
            on_stderr=on_stderr or self.on_stderr,
        )
        result = guard.finish(raw)
        self.pipeline._record("session.step.finished", {**guard.base, **_step_summary(result)})
        if result.session_ended:
            self._record_closed(result.session_ended)
        return result

    def _require_open(self) -> None:
        ended = self._channel.ended
        if ended is not None:
            self._record_closed(ended)
        if self._closed_reason is not None:
            raise SessionClosedError(
                f"the session has ended ({self._closed_reason}); open a new one"
            )

    # -- files ----------------------------------------------------------------------------

    def upload(self, files: FileSpec) -> list[dict[str, Any]]:
        """Place files (name -> bytes or local path, or local paths) in the working directory."""
        self._require_open()
        inputs = input_files(files, self.file_caps)
        summaries = [f.summary() for f in inputs]
        self.pipeline._record("session.files_in", {"session_id": self.id, "files": summaries})
        for item in inputs:
            self._channel.put(item.name, item.data)
        return summaries

    def download(self, patterns: Iterable[str] | str) -> Download:
        """Bring back regular files matching glob patterns (relative; ``*`` matches ``/``)."""
        self._require_open()
        got = self._channel.get(
            list(collect_patterns(patterns)), self.file_caps.max_files, self.file_caps.max_bytes
        )
        self.pipeline._record(
            "session.files_out",
            {
                "session_id": self.id,
                "files": [a.summary() for a in got.artifacts],
                "refused": [r.to_dict() for r in got.refused],
            },
        )
        return got

    def list_files(self) -> list[FileEntry]:
        self._require_open()
        return self._channel.list()

    # -- closing --------------------------------------------------------------------------

    def _record_closed(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        self.pipeline._record(
            "session.closed",
            {
                "session_id": self.id,
                "reason": reason,
                "steps": self._steps,
                "lifetime_s": round(time.monotonic() - self._opened_at, 3),
            },
        )

    def close(self, reason: str = "closed") -> str:
        """End the session (idempotent); return why it ended."""
        ended = self._channel.close()
        self._record_closed(reason if ended == "closed" else ended)
        if self._owns_pipeline:
            self._owns_pipeline = False
            self.pipeline.close()
        return self._closed_reason or ended

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("closed" if exc is None else f"error: {exc_type.__name__ if exc_type else ''}")


class _StepGuard:
    """One step's assessment, decision and approval, recorded as a one-shot run's are."""

    def __init__(self, session: Session, step: int, text: str) -> None:
        self.session = session
        self.step = step
        self.text = text
        self.raw = text.encode("utf-8", "surrogateescape")
        self.run_id = uuid.uuid4().hex
        self.digest = _sha256(self.raw)
        self.base = {
            "session_id": session.id,
            "step": step,
            "run_id": self.run_id,
            "code_sha256": self.digest,
        }
        self.limits: Limits | None = None
        self.decision_dict: dict[str, Any] | None = None
        self.assessment_dict: dict[str, Any] | None = None

    def _result(self, status: str, reason: str | None = None, **kw: Any) -> StepResult:
        return StepResult(
            step=self.step,
            status=status,
            run_id=self.run_id,
            code_sha256=self.digest,
            reason=reason,
            decision=self.decision_dict,
            assessment=self.assessment_dict,
            **kw,
        )

    def decide(self, approver: Approver | None, skip_assessment: bool) -> StepResult | None:
        """None when the step may run (``self.limits`` set), else the result saying why not."""
        from cellblock.assess import AssessConfig, assess
        from cellblock.pipeline import ReviewRequest, _cause, _finding_summary
        from cellblock.policy import PolicyError

        pipe = self.session.pipeline
        policy = pipe.policy
        assessment = None
        cause: str | None
        if skip_assessment:
            if not policy.assessment.allow_skip:
                raise PolicyError(
                    f"policy {policy.name!r} does not allow skipping the assessment "
                    "(assessment.allow_skip is false)"
                )
            pipe._record("assessment.skipped", {**self.base, "policy": policy.name})
            level, cause = "none", "assessment skipped (allowed by assessment.allow_skip)"
        else:
            config = AssessConfig.from_dict(
                {
                    "deep": policy.assessment.deep,
                    "rule_levels": dict(policy.assessment.rule_levels),
                    "category_levels": dict(policy.assessment.category_levels),
                }
            )
            assessment = assess(self.raw, config=config, available_modules=self.session.modules)
            pipe._record(
                "assessment",
                {
                    **self.base,
                    "code_bytes": len(self.raw),
                    "level": assessment.level.value,
                    "findings": _finding_summary(assessment),
                    "analyzers": list(assessment.analyzers_run),
                    "errors": dict(assessment.errors),
                },
            )
            level, cause = assessment.level.value, _cause(assessment)
            full = assessment.to_dict()
            self.assessment_dict = {"level": full["level"], "findings": full["findings"]}
        decision = policy.decide(level, runtimes=pipe.backend.runtimes(), cause=cause)
        limits = pipe._harden(decision.limits) if decision.limits is not None else None
        self.decision_dict = {
            "action": decision.action,
            "profile": decision.profile,
            "reason": decision.reason,
            "level": decision.level,
        }
        pipe._record(
            "decision",
            {
                **self.base,
                "level": level,
                "action": decision.action,
                "profile": decision.profile,
                "reason": decision.reason,
                "limits": None if limits is None else limits.to_dict(),
                "policy": policy.name,
            },
        )
        if decision.action == "block" or limits is None:
            return self._result("blocked", decision.reason)
        misfit = _misfit(self.session.limits, limits)
        if misfit:
            reason = (
                f"the decision needs a stricter sandbox than this session's ({misfit}); open "
                "the session with limits_override to match, or run this step on its own"
            )
            pipe._record("session.step.refused", {**self.base, "reason": reason})
            return self._result("refused", reason)
        permitted = policy.profiles[decision.profile].permitted_images() if decision.profile else ()
        if self.session.image not in permitted:
            reason = (
                f"profile {decision.profile!r} does not permit this session's image "
                f"{self.session.image!r}; open a session on an image it permits"
            )
            pipe._record("session.step.refused", {**self.base, "reason": reason})
            return self._result("refused", reason)
        if decision.action == "review":
            approval = pipe._ask(approver, ReviewRequest(self.text, assessment, decision))
            pipe._record("approval", {**self.base, **approval.to_dict()})
            if not approval.approved:
                return self._result("not_approved", approval.reason or "not approved")
        self.limits = limits.tighten(self.session.limits.replace(timeout_s=limits.timeout_s))
        return None

    def finish(self, raw: RawStep) -> StepResult:
        status = _status(raw)
        artifacts = tuple(
            Artifact.from_bytes(f"figure-{self.step}-{n}.png", png, kind="figure")
            for n, png in enumerate(raw.figures, 1)
        )
        reason = None
        if raw.session_ended:
            reason = f"the session ended: {raw.session_ended}"
        elif raw.figure_error:
            reason = f"a figure could not be saved: {raw.figure_error}"
        if status == "interrupted":
            reason = "the step overran its timeout and was interrupted; the session goes on"
        assert self.limits is not None
        return self._result(
            status,
            reason,
            stdout=raw.stdout.decode("utf-8", "replace"),
            stderr=raw.stderr.decode("utf-8", "replace"),
            stdout_truncated=raw.stdout_bytes > len(raw.stdout),
            stderr_truncated=raw.stderr_bytes > len(raw.stderr),
            stdout_bytes=raw.stdout_bytes,
            stderr_bytes=raw.stderr_bytes,
            value=raw.value,
            value_truncated=raw.value_truncated,
            exit_code=raw.exit_code if status == "exit" else None,
            duration_s=raw.duration_s,
            cpu_time_s=raw.cpu_time_s,
            peak_memory_bytes=raw.peak_memory_bytes,
            artifacts=artifacts,
            session_ended=raw.session_ended,
        )


def _status(raw: RawStep) -> str:
    if raw.outcome == "reported":
        if raw.interrupted and raw.reported == "interrupted":
            return "interrupted"
        return raw.reported or "error"
    if raw.outcome == "timeout":
        return "timeout"
    if raw.outcome == "oom" or raw.oom_killed:
        return "oom"
    return "killed"  # died, protocol, lost


def _misfit(session: Limits, step: Limits) -> str | None:
    """Which container bound of the session is looser than the step's decision asks."""
    tight = session.tighten(step)
    for name in _CONTAINER_FIELDS:
        if getattr(tight, name) != getattr(session, name):
            return f"{name}: session {getattr(session, name)!r}, step {getattr(step, name)!r}"
    return None


def _step_summary(r: StepResult) -> dict[str, Any]:
    return {
        "status": r.status,
        "exit_code": r.exit_code,
        "duration_s": r.duration_s,
        "cpu_time_s": r.cpu_time_s,
        "stdout_sha256": _sha256(r.stdout.encode("utf-8", "surrogateescape")),
        "stderr_sha256": _sha256(r.stderr.encode("utf-8", "surrogateescape")),
        "stdout_bytes": r.stdout_bytes,
        "stderr_bytes": r.stderr_bytes,
        "value_sha256": None if r.value is None else _sha256(r.value.encode("utf-8", "replace")),
        "figures": [a.summary() for a in r.artifacts],
        "session_ended": r.session_ended,
    }
