"""The transport-independent service: one pipeline per policy, quotas, in-flight runs, shutdown.

Both servers call :meth:`ServiceCore.run` and :meth:`ServiceCore.assess`; the pipeline makes and
records every decision. All pipelines share one backend (one engine connection, one reaper) and
one audit log (it serialises appends itself).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import getpass
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellblock.assess import AssessConfig, assess
from cellblock.audit import AuditLog, default_private_key, default_public_key, ensure_keypair
from cellblock.audit._paths import default_audit_dir
from cellblock.errors import CellblockError
from cellblock.pipeline import Approver, Pipeline, PipelineResult
from cellblock.policy import LoadedPolicy, load_policy
from cellblock.sandbox import SandboxError
from cellblock.sandbox._sandbox import default_backend
from cellblock.sandbox.errors import InvalidLimitsError, SourceDecodeError
from cellblock.sandbox.files import FileCaps, FileError, input_files
from cellblock.sandbox.interface import Backend
from cellblock.service._metrics import ServiceMetrics
from cellblock.service._packages import check_image, check_packages, translate
from cellblock.service._quotas import QuotaTracker
from cellblock.service.interface import (
    Identity,
    ImageUnavailableError,
    RequestFieldError,
    ShuttingDownError,
)

LABEL_MANAGED = "cellblock.managed"


@dataclass
class _InFlight:
    request_id: str
    identity: Identity
    started: float
    future: concurrent.futures.Future[PipelineResult]


class ServiceCore:
    def __init__(
        self,
        *,
        audit_dir: Path | None = None,
        backend: Backend | None = None,
        max_workers: int = 32,
        warm: bool = True,
    ) -> None:
        self.metrics = ServiceMetrics(self)
        self.quotas = QuotaTracker()
        self._owns_backend = backend is None
        self.backend = backend if backend is not None else default_backend()
        # a restart after a crash (SIGKILL) reaps the cells the dead server left
        self.reaped_at_start = self.backend.reap()
        self.audit = _open_audit(audit_dir or default_audit_dir())
        _time_appends(self.audit, self.metrics)
        self._pipelines: dict[str, Pipeline] = {}
        self._policies: dict[str, LoadedPolicy] = {}
        # re-entrant: begin_drain() runs in a signal handler, possibly while the main thread
        # already holds it
        self._lock = threading.RLock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="cellblock-run"
        )
        self._inflight: dict[str, _InFlight] = {}
        self._draining: float | None = None
        self._at_drain: list[_InFlight] = []
        self._closed = False
        self._warm = warm
        self._images_present: set[str] = set()  # image tags seen built and current
        self.started_at = time.time()
        from cellblock.service._sessions import SessionRegistry

        self.sessions = SessionRegistry(self)

    # -- policies ------------------------------------------------------------------------------

    def loaded_policy(self, name: str) -> LoadedPolicy:
        with self._lock:
            loaded = self._policies.get(name)
            if loaded is None:
                loaded = self._policies[name] = load_policy(name)
            return loaded

    def pipeline_for(self, policy: str) -> Pipeline:
        loaded = self.loaded_policy(policy)
        with self._lock:
            pipeline = self._pipelines.get(policy)
            if pipeline is None:
                pipeline = Pipeline(loaded, backend=self.backend, audit_log=self.audit)
                self._pipelines[policy] = pipeline
                if self._warm:
                    # warm in the background: the first caller does not wait for the pool
                    threading.Thread(target=_quietly(pipeline.warm), daemon=True).start()
            return pipeline

    def pipelines(self) -> list[Pipeline]:
        with self._lock:
            return list(self._pipelines.values())

    # -- runs ----------------------------------------------------------------------------------

    def submit(
        self,
        identity: Identity,
        code: str,
        *,
        stdin: bytes | None = None,
        timeout_s: float | None = None,
        approver: Approver | None = None,
        image: str | None = None,
        packages: Sequence[str] | None = None,
        files: Mapping[str, bytes] | None = None,
        collect: Sequence[str] | None = None,
    ) -> tuple[str, concurrent.futures.Future[PipelineResult]]:
        """Start a run (quota already held by the caller); the future gives its result.

        ``packages`` over the caps, an unknown image or one no profile permits raise
        :class:`RequestFieldError` here; package and image errors of the run itself come out
        of the future as service errors (see :func:`cellblock.service._packages.translate`).
        """
        if self._draining is not None:
            raise ShuttingDownError("the server is shutting down and accepts no new runs")
        specs = check_packages(packages)
        check_image(self.loaded_policy(identity.policy).policy, image)
        inputs = check_files(files, identity.quotas.max_request_bytes)
        pipeline = self.pipeline_for(identity.policy)
        override: dict[str, Any] = {
            "stdout_bytes": identity.quotas.max_output_bytes,
            "stderr_bytes": identity.quotas.max_output_bytes,
        }
        if timeout_s is not None:
            override["timeout_s"] = timeout_s  # tightens only: the pipeline takes the minimum
        request_id = uuid.uuid4().hex

        def work() -> PipelineResult:
            t0 = time.monotonic()
            try:
                if image is not None:
                    self._require_image(pipeline, image)
                result = pipeline.execute(
                    code,
                    stdin=stdin,
                    approver=approver,
                    limits_override=override,
                    caller=identity.to_audit(),
                    image=image,
                    packages=specs,
                    files=inputs,
                    collect=collect,
                )
            except (InvalidLimitsError, SourceDecodeError):
                raise  # the caller's input, not the engine
            except CellblockError as exc:
                translated = translate(exc, specs)
                if translated is not None:
                    raise translated from None
                if isinstance(exc, SandboxError):
                    self.metrics.engine_errors.inc()
                raise
            self.metrics.observe_run(result, time.monotonic() - t0)
            return result

        with self._lock:
            future = self._executor.submit(work)
            self._inflight[request_id] = _InFlight(request_id, identity, time.time(), future)
        future.add_done_callback(lambda _f: self._done(request_id))
        return request_id, future

    def _require_image(self, pipeline: Pipeline, image: str) -> None:
        """Refuse an image profile that is not built: the service never builds one for a
        request (the pipeline would, and that is minutes of host work a caller could start)."""
        from cellblock.sandbox.profiles import find_profile, inspect_profile_image, profile_tag

        if image == "base":
            return  # the sandbox image: built or checked when the pipeline starts
        client = getattr(self.backend, "client", None)
        if client is None:
            return
        profile = find_profile(image, pipeline.policy)
        if profile_tag(profile) in self._images_present:
            return
        info = inspect_profile_image(client, profile)
        if not (info.present and info.current):
            raise ImageUnavailableError(
                f"field 'image': the {image} image is not built on this server "
                f"({'stale' if info.present else 'absent'}); pick another image, or ask the "
                f"operator to run `cellblock image build --profile {image}`"
            )
        self._images_present.add(info.tag)

    def _done(self, request_id: str) -> None:
        with self._lock:
            self._inflight.pop(request_id, None)

    def in_flight(self, subject: str | None = None) -> list[dict[str, Any]]:
        """Runs accepted and not finished (only ``subject``'s when given)."""
        now = time.time()
        with self._lock:
            return [
                {
                    "request_id": f.request_id,
                    "caller": f.identity.subject,
                    "age_s": round(now - f.started, 3),
                }
                for f in self._inflight.values()
                if subject is None or f.identity.subject == subject
            ]

    def assess(self, identity: Identity, code: str) -> dict[str, Any]:
        """What the pipeline would decide for this code under the caller's policy (nothing runs)."""
        policy = self.loaded_policy(identity.policy).policy
        config = AssessConfig.from_dict(
            {
                "deep": policy.assessment.deep,
                "rule_levels": dict(policy.assessment.rule_levels),
                "category_levels": dict(policy.assessment.category_levels),
            }
        )
        assessment = assess(code.encode("utf-8", "surrogateescape"), config=config)
        decision = policy.decide(assessment.level.value, runtimes=self.backend.runtimes())
        return {
            "assessment": assessment.to_dict(),
            "decision": {
                "action": decision.action,
                "profile": decision.profile,
                "reason": decision.reason,
                "level": decision.level,
            },
            "policy": {"name": policy.name, "digest": policy.digest()},
        }

    # -- shutdown ------------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """Refuse new runs from now on (SIGTERM received)."""
        if self._draining is None:
            self._draining = time.monotonic()
            with self._lock:  # the runs the grace period applies to
                self._at_drain = list(self._inflight.values())

    @property
    def draining(self) -> bool:
        return self._draining is not None

    def shutdown(self, grace_s: float) -> dict[str, Any]:
        """Let running cells finish up to ``grace_s`` after the drain began; kill the rest."""
        self.begin_drain()
        assert self._draining is not None
        deadline = self._draining + grace_s
        with self._lock:
            pending = list(
                {p.request_id: p for p in self._at_drain + list(self._inflight.values())}.values()
            )
        concurrent.futures.wait(
            [p.future for p in pending], timeout=max(0.0, deadline - time.monotonic())
        )
        killed = [p for p in pending if not p.future.done()]
        sessions_closed = self.sessions.close_all("server shutdown")
        removed = self._kill_own_cells() if killed else 0
        # the killed runs now finish (their pipeline records what happened to each)
        concurrent.futures.wait([p.future for p in killed], timeout=30)
        record = {
            "grace_s": grace_s,
            "finished": len(pending) - len(killed),
            "killed": [
                {"request_id": p.request_id, "caller": p.identity.to_audit()} for p in killed
            ],
            "containers_removed": removed,
            "sessions_closed": sessions_closed,
        }
        with contextlib.suppress(CellblockError):
            self.audit.append("service.shutdown", record)
        self.close()
        return record

    def _kill_own_cells(self) -> int:
        """Force-remove every cell this process owns (the runs past the grace period)."""
        client = getattr(self.backend, "client", None)
        if client is None:
            return 0
        removed = 0
        flt = {"label": [f"{LABEL_MANAGED}=1", f"cellblock.owner_pid={os.getpid()}"]}
        for c in client.api.containers(all=True, filters=flt):
            with contextlib.suppress(Exception):
                client.api.remove_container(c["Id"], force=True)
                removed += 1
        return removed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.sessions.close_all("server closed")
        self._executor.shutdown(wait=False, cancel_futures=True)
        for pipeline in self.pipelines():
            with contextlib.suppress(CellblockError):
                pipeline.close()
        if self._owns_backend:
            with contextlib.suppress(Exception):
                self.backend.close()
        with contextlib.suppress(CellblockError):
            self.audit.close()


def local_identity(policy: str, via: str) -> Identity:
    user = getpass.getuser()
    return Identity(subject=f"local:{user}", via=via, policy=policy, name=user)


def _open_audit(directory: Path) -> AuditLog:
    key = default_private_key()
    ensure_keypair(key, default_public_key())
    return AuditLog.open(directory, signing_key=key)


def _time_appends(log: AuditLog, metrics: ServiceMetrics) -> None:
    """Measure every append (the pipeline's records and ours) for /metrics."""
    original = log.append

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            metrics.audit_append.observe(time.perf_counter() - t0)

    setattr(log, "append", timed)  # noqa: B010 -- an instance attribute shadows the method


def _quietly(fn: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        with contextlib.suppress(Exception):
            fn()

    return call


def check_files(files: Mapping[str, bytes] | None, max_bytes: int) -> dict[str, bytes] | None:
    """Input files of a request: valid names, within the file caps and the token's request
    size, checked before anything is assessed or recorded (a RequestFieldError names them)."""
    if not files:
        return None
    caps = FileCaps(max_bytes=min(FileCaps().max_bytes, max_bytes))
    try:
        inputs = input_files(dict(files), caps)
    except FileError as exc:
        raise RequestFieldError(f"field 'files': {exc}", field="files", kind="invalid") from None
    return {f.name: f.data for f in inputs}
