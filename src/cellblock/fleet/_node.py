"""The node: one ordinary Pipeline on this machine's engine, driven by the dispatcher.

This module does not import Ray: :class:`NodeServer` is a plain class that the dispatcher wraps
as a Ray actor, so that it runs in a long-lived process on the node's machine (its warm pool,
key and log stay there). Everything it returns is plain data or a PipelineResult.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellblock.audit import (
    AuditLog,
    AuditWriteError,
    DirectoryWitness,
    default_private_key,
    default_public_key,
    ensure_keypair,
)
from cellblock.audit._keys import load_private, raw_public
from cellblock.errors import CellblockError
from cellblock.pipeline import AuditUnavailableError, Pipeline, PipelineResult
from cellblock.policy import LoadedPolicy, Policy, load_policy
from cellblock.sandbox._sandbox import decode_source


@dataclass(frozen=True)
class NodeFailure:
    """A cellblock error raised on the node, carried back as data (never a remote traceback)."""

    kind: str
    message: str
    exit_code: int
    result: PipelineResult | None = None  # set when the program ran but its end was not recorded


def program_digest(code: str | bytes) -> str:
    """The code digest the node's pipeline records, computed the same way on the dispatcher."""
    import hashlib

    raw = decode_source(code).encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()


class NodeServer:
    """A Pipeline with its own log and key; thread-safe, several programs at once."""

    def __init__(
        self,
        name: str,
        policy: Policy | LoadedPolicy | str | None,
        *,
        audit_dir: str | None = None,
        signing_key: str | None = None,
        use_pool: bool | None = None,
        warm: bool = True,
        joined: Mapping[str, Any] | None = None,
        offer: tuple[str, ...] | None = None,
        niceness: int | None = 0,
    ) -> None:
        self.name = name
        if niceness is not None:
            # raising the priority back needs CAP_SYS_NICE (or RLIMIT_NICE); without it the node
            # keeps Ray's value, and its identity says so
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, niceness)
        self._count = threading.Lock()
        self._active = 0
        self._peak = 0
        self._done = 0
        self._log: AuditLog | None = None
        self._pipeline: Pipeline | None = None
        # A failed start is kept as one sentence for identity() to report: an exception here
        # would reach the dispatcher as Ray's wrapper with the reason buried in a traceback.
        self._failed: str | None = None
        try:
            self._setup(policy, audit_dir, signing_key, use_pool, warm, joined, offer)
        except (CellblockError, OSError) as exc:
            self._failed = str(exc)
            self._close_quietly()

    def _setup(
        self,
        policy: Policy | LoadedPolicy | str | None,
        audit_dir: str | None,
        signing_key: str | None,
        use_pool: bool | None,
        warm: bool,
        joined: Mapping[str, Any] | None,
        offer: tuple[str, ...] | None,
    ) -> None:
        loaded = policy if isinstance(policy, Policy | LoadedPolicy) else load_policy(policy)
        settings = (loaded.policy if isinstance(loaded, LoadedPolicy) else loaded).audit
        directory = Path(audit_dir) if audit_dir else settings.resolve_directory()
        key = Path(signing_key or settings.signing_key or default_private_key())
        if not signing_key and settings.signing_key is None:
            ensure_keypair(key, default_public_key())  # as the Pipeline does on first use
        witness = DirectoryWitness(settings.witness) if settings.witness else None
        try:
            self._log = AuditLog.open(
                directory, signing_key=key, witness=witness, **settings.open_kwargs()
            )
        except AuditWriteError as exc:
            raise AuditUnavailableError(
                f"the audit log at {directory} cannot record ({exc})"
            ) from exc
        self._public = raw_public(load_private(key).public_key()).hex()
        self._pipeline = Pipeline(loaded, audit_log=self._log, use_pool=use_pool)
        # the node's own log says which fleet it served, under which name
        self._log.append("fleet.node.joined", {"node": self.name, **dict(joined or {})})
        engine = self._pipeline.backend.runtimes()
        self._runtimes = tuple(sorted(engine if offer is None else engine & set(offer)))
        if warm:
            self._pipeline.warm()

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "the node did not start"
        return self._pipeline

    def identity(self) -> dict[str, Any]:
        """Who this node is, or ``{"error": why}`` when it could not start."""
        if self._failed is not None or self._log is None:
            return {"error": self._failed or "the node did not start"}
        try:
            import ray

            ray_node = ray.get_runtime_context().get_node_id()
        except Exception:  # not under Ray (tests of the node alone)
            ray_node = ""
        return {
            "name": self.name,
            "key_id": self._log.key_id,
            "public_key": self._public,
            "log_id": self._log.log_id,
            "runtimes": list(self._runtimes),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "ray_node_id": ray_node,
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        }

    def run(self, code: str | bytes, options: Mapping[str, Any]) -> PipelineResult | NodeFailure:
        """Run one program through the node's pipeline; a cellblock error comes back as data."""
        with self._count:
            self._active += 1
            self._peak = max(self._peak, self._active)
        try:
            if self._pipeline is None:
                return NodeFailure("FleetUnavailableError", f"node {self.name} did not start", 69)
            needs = frozenset(options.get("needs", ()))
            missing = needs - set(self._runtimes)
            if missing:  # the dispatcher never sends these; refuse rather than run with less
                return NodeFailure(
                    "NoCapableNodeError",
                    f"node {self.name} has no {', '.join(sorted(missing))}",
                    69,
                )
            return self.pipeline.execute(
                code,
                skip_assessment=bool(options.get("skip_assessment", False)),
                limits_override=options.get("limits_override") or None,
            )
        except AuditUnavailableError as exc:
            return NodeFailure(type(exc).__name__, str(exc), exc.exit_code, exc.result)
        except CellblockError as exc:
            return NodeFailure(type(exc).__name__, str(exc), exc.exit_code)
        finally:
            with self._count:
                self._active -= 1
                self._done += 1

    def stats(self) -> dict[str, int]:
        """Programs running now, the most at once so far, and done."""
        with self._count:
            return {"active": self._active, "peak": self._peak, "done": self._done}

    def close(self) -> None:
        try:
            if self._pipeline is not None:
                self._pipeline.close()
        finally:
            if self._log is not None:
                self._log.close()

    def _close_quietly(self) -> None:
        with contextlib.suppress(CellblockError, OSError):
            self.close()
