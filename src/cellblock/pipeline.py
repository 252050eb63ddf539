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
from typing import TYPE_CHECKING, Any

from cellblock._packages_step import PackagesStep
from cellblock.assess import AssessConfig, Assessment, Level, assess
from cellblock.audit import (
    AuditLog,
    AuditWriteError,
    DirectoryWitness,
    Receipt,
    RecordRef,
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
from cellblock.network.interface import NetworkError
from cellblock.packages import PackageVerdict
from cellblock.policy import Decision, LoadedPolicy, Policy, PolicyError, load_policy
from cellblock.sandbox import ExecutionResult, Limits, Pool, RunRequest, SandboxError
from cellblock.sandbox._sandbox import decode_source, default_backend
from cellblock.sandbox.files import FileCaps, FileSpec, collect_patterns, input_files
from cellblock.sandbox.image import Progress
from cellblock.sandbox.interface import Backend, OutputCallback, WheelPayload

if TYPE_CHECKING:
    from cellblock.session import Session


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
    packages: PackageVerdict | None = None  # per-run packages, when a verdict asked for review


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
    image: str = "base"  # the image profile the program ran (or would have run) on
    packages: PackageVerdict | None = None  # the per-run packages' resolution, scan and verdict
    # where the run was recorded (see cellblock.audit.Receipt); None only when built by hand
    receipt: Receipt | None = None

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
                artifacts=[],
                files_refused=[],
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
        data["image"] = self.image
        data["packages"] = None if self.packages is None else self.packages.to_dict()
        data["receipt"] = None if self.receipt is None else self.receipt.to_dict()
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
        wheelhouse: Path | None = None,
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
        # image profile name -> backend and pool for images other than the policy's default
        self._image_backends: dict[str, Backend] = {}
        self._image_pools: dict[str, Pool] = {}
        self._wheelhouse = wheelhouse
        self._packages_step: PackagesStep | None = None
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

    def _backend_for(self, image: str) -> Backend:
        """The backend for an image profile (``base``: the pipeline's own), built on demand."""
        if image == "base":
            return self.backend
        base = self.backend
        with self._lock:
            if image not in self._image_backends:
                from cellblock._images import profile_of
                from cellblock.sandbox.docker import DockerBackend
                from cellblock.sandbox.profiles import (
                    build_profile_image,
                    inspect_profile_image,
                    profile_tag,
                )

                client = getattr(base, "client", None)
                if client is None:
                    raise PolicyError(f"the {base.name} backend cannot run the {image} image")
                profile = profile_of(self.policy, image)
                info = inspect_profile_image(client, profile)
                if not (info.present and info.current):
                    build_profile_image(client, profile, progress=self._progress)
                self._image_backends[image] = DockerBackend(
                    client=client, image=profile_tag(profile)
                )
            return self._image_backends[image]

    def _runner_for(self, image: str) -> Backend | Pool:
        """Where a run on ``image`` goes: the image's pool when pooling is on, else its backend."""
        if image == "base":
            pool = self._pool_for()
            return pool if pool is not None else self.backend
        backend = self._backend_for(image)
        enabled = self.policy.pool.enabled if self._use_pool is None else self._use_pool
        if not enabled or self.policy.pool.size < 1:
            return backend
        with self._lock:
            if image not in self._image_pools:
                settings = self.policy.pool
                self._image_pools[image] = Pool(
                    backend, size=settings.size, idle_timeout_s=settings.idle_timeout
                )
            return self._image_pools[image]

    def warm(self, image: str | None = None) -> None:
        """Start the pool for the policy's open profile (when the policy enables a pool), on
        ``image`` or the profile's own image."""
        decision = self.policy.decide("none", runtimes=self.backend.runtimes())
        if decision.profile is None or decision.limits is None:
            return
        from cellblock._images import chosen_image

        target = self._runner_for(chosen_image(self.policy, decision.profile, image))
        if isinstance(target, Pool):
            target.warm(self._harden(decision.limits), wait=True)

    def _harden(self, limits: Limits) -> Limits:
        h = self.policy.hardening
        return limits.replace(
            read_only_root=h.read_only_root,
            no_new_privileges=h.no_new_privileges,
            seccomp=h.seccomp,
        )

    def _record(self, type_: str, payload: Mapping[str, Any]) -> RecordRef | None:
        try:
            return self.audit.append(type_, payload)
        except AuditWriteError as exc:
            if self.policy.audit.required:
                raise AuditUnavailableError(
                    f"the audit log cannot record '{type_}' ({exc}); no code was run"
                ) from exc
            return None

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
        files: FileSpec | None = None,
        collect: Iterable[str] | str | None = None,
        file_caps: FileCaps | None = None,
        image: str | None = None,
        packages: Sequence[str] | None = None,
        package_hashes: Mapping[str, set[str]] | None = None,
        caller: Mapping[str, Any] | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> PipelineResult:
        """Assess, decide, ask for approval when needed, run, and record every step.

        ``image`` picks an image profile (``base``, ``data``, or one the policy declares) among
        those the decided profile permits; ``None`` runs on the profile's own image.
        ``packages`` are requirement specifiers (``tabulate==0.10.0``) resolved on the host,
        scanned and checked against the decided profile's ``packages:`` rules, then sent to the
        sandbox (networking stays off); ``package_hashes`` pins names to sha256 digests. A
        refused package raises a :class:`~cellblock.packages.PackageError` and nothing runs.
        ``caller`` (who asked, e.g. a service token's id, never a secret) goes into every
        audit record of this run. ``files`` go into the working directory before the program
        runs; files matching ``collect`` come back as ``execution.artifacts``. ``on_stdout``
        and ``on_stderr`` receive the program's output as text chunks while it runs (a callback
        that raises is ignored); ``execution`` still holds all of it.
        """
        return self._execute(
            code,
            stdin=stdin,
            approver=approver,
            skip_assessment=skip_assessment,
            deep=deep,
            limits_override=limits_override,
            files=files,
            collect=collect,
            file_caps=file_caps,
            image=image,
            packages=packages,
            package_hashes=package_hashes,
            caller=caller,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
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
        files: FileSpec | None = None,
        collect: Iterable[str] | str | None = None,
        file_caps: FileCaps | None = None,
        image: str | None = None,
        packages: Sequence[str] | None = None,
        package_hashes: Mapping[str, set[str]] | None = None,
        caller: Mapping[str, Any] | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        batch: Mapping[str, Any] | None = None,
        run: Callable[[RunRequest, dict[str, Any]], ExecutionResult] | None = None,
        assessed: Assessment | None = None,
    ) -> PipelineResult:
        caps = file_caps or FileCaps()
        inputs = input_files(files, caps)  # bad names or caps fail before anything is recorded
        patterns = collect_patterns(collect)
        from cellblock._images import chosen_image, modules_for, provisional_image

        if image is not None:
            modules_for(self.policy, image)  # an unknown name is an error before anything runs
        assumed_image = provisional_image(self.policy, image)
        text = decode_source(code)
        raw = text.encode("utf-8", "surrogateescape")
        run_id = uuid.uuid4().hex
        digest = _sha256(raw)
        # a batch's programs carry its id and their place in it in every record
        base: dict[str, Any] = {"run_id": run_id, "code_sha256": digest, **(batch or {})}
        if caller is not None:
            base["caller"] = dict(caller)
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
            available = modules_for(self.policy, assumed_image)
            if (
                assessed is not None
                and assessed.code_sha256 == digest
                and image is None
                and assumed_image == "base"
            ):
                assessment = assessed  # a batch assessed these very bytes in a helper process
            else:
                assessment = assess(
                    raw, config=self._assess_config(), deep=deep, available_modules=available
                )
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
        run_image = assumed_image
        if decision.profile is not None:
            run_image = chosen_image(self.policy, decision.profile, image)
            if assessment is not None and run_image != assumed_image:
                from cellblock._images import recheck_dependencies

                assessment = recheck_dependencies(
                    assessment, modules_for(self.policy, run_image)
                )
        refs: dict[str, RecordRef | None] = {}  # the run's records, for its receipt
        refs["decision"] = self._record(
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
                "image": run_image,
                "loosenings": self._policy_loosenings
                + ([] if limits is None else [f"limits.{name}" for name in limits.loosenings()]),
            },
        )

        package_verdict: PackageVerdict | None = None

        def finish(approval: Approval | None, execution: ExecutionResult | None) -> PipelineResult:
            receipt = Receipt(self.audit.log_id, self.audit.key_id, run_id, digest, **refs)
            return PipelineResult(
                run_id,
                digest,
                policy_name,
                policy_digest,
                assessment,
                decision,
                approval,
                execution,
                run_image,
                package_verdict,
                receipt,
            )

        if decision.action == "block":
            return finish(None, None)

        # 2b. per-run packages, under the decided profile's rules
        wheels: tuple[WheelPayload, ...] = ()
        if packages:
            assert decision.profile is not None
            package_verdict, wheels = self._packages().prepare(
                self.policy, decision.profile, list(packages), package_hashes, base, self._record
            )

        # 3. review (also when a package finding asks for it)
        approval: Approval | None = None
        if decision.action == "review" or (
            package_verdict is not None and package_verdict.action == "review"
        ):
            request_ = ReviewRequest(text, assessment, decision, package_verdict)
            approval = self._ask(approver, request_)
            refs["approval"] = self._record("approval", {**base, **approval.to_dict()})
            if not approval.approved:
                return finish(approval, None)

        # 4. run
        if run is not None and run_image != "base":
            # a shared batch cell runs the base image only; never report another image as used
            raise SandboxError(
                f"a shared batch cell runs the base image, but this program's profile runs on "
                f"{run_image!r}; run this batch with cell_mode='single'"
            )
        assert limits is not None
        request = RunRequest(
            code=text,
            limits=limits,
            stdin=stdin,
            wheels=wheels,
            files=inputs,
            collect=patterns,
            file_caps=caps,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
        )
        target = self._runner_for(run_image)
        backend = self.backend if run_image == "base" else self._backend_for(run_image)
        refs["started"] = self._record(
            "execution.started",
            {
                **base,
                "limits": limits.to_dict(),
                "runtime": limits.runtime,
                "backend": backend.name,
                "image": run_image,
                "stdin_sha256": _sha256(stdin or b""),
                **({"files_in": [f.summary() for f in inputs]} if inputs else {}),
                **({"collect": list(patterns)} if patterns else {}),
            },
        )  # durable: on disk before any container exists
        started = time.monotonic()
        try:
            # ``run``: a batch's shared cell (opt-in, see docs/batch.md)
            execution = run(request, base) if run is not None else target.run(request)
        except (SandboxError, NetworkError) as exc:
            self._record(
                "execution.failed",
                {**base, "error": str(exc), "after_s": round(time.monotonic() - started, 6)},
            )
            raise
        try:
            # allowlist runs: every connection attempt the egress proxy saw, under the run's id
            for connection in (execution.network or {}).get("connections", []):
                self.audit.append("network.connection", {**base, **connection})
            refs["finished"] = self.audit.append(
                "execution.finished", {**base, **_execution_summary(execution)}
            )
        except AuditWriteError as exc:
            raise AuditUnavailableError(
                f"the program ran but the audit log could not record its end ({exc}); "
                "the result is attached to this error",
                result=finish(approval, execution),
            ) from exc
        return finish(approval, execution)

    def _packages(self) -> PackagesStep:
        if self._packages_step is None:
            self._packages_step = PackagesStep(wheelhouse=self._wheelhouse)
        return self._packages_step

    def session(self, **kwargs: Any) -> Session:
        """A :class:`~cellblock.session.Session` on this pipeline's policy, log and engine."""
        from cellblock.session import Session

        return Session(pipeline=self, **kwargs)

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
        for image_pool in self._image_pools.values():
            image_pool.close()
        # image backends share the pipeline backend's engine client, closed below
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
        # the connections themselves are network.connection records
        "network": None
        if r.network is None
        else {k: v for k, v in r.network.items() if k != "connections"},
        **({"files_out": [a.summary() for a in r.artifacts]} if r.artifacts else {}),
        **({"files_refused": [f.to_dict() for f in r.files_refused]} if r.files_refused else {}),
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
    files: FileSpec | None = None,
    collect: Iterable[str] | str | None = None,
    image: str | None = None,
    packages: Sequence[str] | None = None,
    wheelhouse: Path | None = None,
    on_stdout: OutputCallback | None = None,
    on_stderr: OutputCallback | None = None,
) -> PipelineResult:
    """One guarded run: assess, decide, approve, run and record. See :class:`Pipeline`."""
    with Pipeline(policy, backend=backend, audit_dir=audit_dir, wheelhouse=wheelhouse) as p:
        return p.execute(
            code,
            stdin=stdin,
            approver=approver,
            skip_assessment=skip_assessment,
            image=image,
            packages=packages,
            files=files,
            collect=collect,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
        )
