"""The fleet's public interface: node descriptions, errors, the dispatcher contract, reports.

A fleet is a set of *remote pipelines*: each node runs an ordinary :class:`~cellblock.Pipeline`
on its own Docker engine, with its own warm pool, signing key and audit log. The dispatcher only
carries program text to a node and the result back; every decision is made and recorded on the
node that runs the program. See docs/scale-out.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cellblock.errors import CellblockError
from cellblock.pipeline import PipelineResult


class FleetError(CellblockError):
    """Base of every error the fleet raises."""


class FleetUnavailableError(FleetError):
    """The fleet cannot start: Ray is missing or not initialised, or no node came up."""

    exit_code = 69  # EX_UNAVAILABLE


class NodeLostError(FleetError):
    """The node running a program was lost; the program was not rerun (unless asked)."""

    def __init__(self, message: str, *, node: str, index: int) -> None:
        super().__init__(message)
        self.node = node
        self.index = index


class NoCapableNodeError(FleetError):
    """No live node offers what a program needs (e.g. gVisor); it is never run with less."""

    def __init__(self, message: str, *, needs: frozenset[str], index: int) -> None:
        super().__init__(message)
        self.needs = needs
        self.index = index


class NodeRunError(FleetError):
    """The node's pipeline raised a cellblock error for this program (its kind is kept)."""

    def __init__(self, message: str, *, node: str, index: int, kind: str, exit_code: int) -> None:
        super().__init__(message)
        self.node = node
        self.index = index
        self.kind = kind
        self.exit_code = exit_code


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: where its actor goes and where its log and key live on that machine.

    Placement: ``ray_node_id`` pins the actor to that Ray node; otherwise ``resources`` (custom
    Ray resources such as ``{"cellblock-gpu-box": 1}``) choose it. ``audit_dir`` and
    ``signing_key`` are paths on the node's machine; None means the policy's (or the default).
    """

    name: str
    ray_node_id: str | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    audit_dir: str | None = None
    signing_key: str | None = None
    max_in_flight: int | None = None  # None: the fleet's per-node cap
    # the runtimes this node offers the fleet (a subset of its engine's); None: all it has
    runtimes: tuple[str, ...] | None = None
    # the node process's nice value: Ray starts workers at 15, which starves the node's own work
    # (assessment, the pool's refills) on a busy machine; None keeps Ray's
    niceness: int | None = 0


@dataclass(frozen=True)
class NodeIdentity:
    """What a node reports about itself when it starts (all read on the node)."""

    name: str
    key_id: str
    public_key: str  # raw Ed25519 public key, hex
    log_id: str
    runtimes: tuple[str, ...]
    host: str
    pid: int
    ray_node_id: str
    niceness: int = 0  # the node process's nice value, as it runs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "log_id": self.log_id,
            "runtimes": list(self.runtimes),
            "host": self.host,
            "pid": self.pid,
            "ray_node_id": self.ray_node_id,
            "niceness": self.niceness,
        }


FleetOutcome = PipelineResult | FleetError


class Dispatcher(ABC):
    """Spreads programs over nodes and returns their results in the caller's order."""

    @abstractmethod
    def map(
        self,
        codes: Sequence[str | bytes],
        *,
        runtime: str | None = None,
        rerun_lost: bool = False,
        skip_assessment: bool = False,
        limits_override: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> list[FleetOutcome]:
        """Run every program; entry ``i`` is program ``i``'s result or the FleetError it met.

        ``runtime="runsc"`` places a program only on nodes with gVisor (never a fallback).
        ``rerun_lost`` reruns a program whose node was lost on another node (recorded);
        by default it comes back as :class:`NodeLostError`. ``progress`` None draws a bar on
        stderr only when stderr is a terminal.
        """

    def execute(self, code: str | bytes, **options: Any) -> PipelineResult:
        """One program; raises the FleetError instead of returning it."""
        outcome = self.map([code], **options)[0]
        if isinstance(outcome, FleetError):
            raise outcome
        return outcome

    @abstractmethod
    def nodes(self) -> list[NodeIdentity]:
        """Every node the fleet started, lost or not."""

    @abstractmethod
    def lost(self) -> list[str]:
        """Names of the nodes found lost."""

    @abstractmethod
    def close(self) -> None:
        """Close every live node (its pipeline and log) and the dispatcher's log."""


@dataclass(frozen=True)
class FleetProblem:
    """One failure of fleet verification, named: ``kind``, the node, the seq and the run.

    Kinds: ``node_list_invalid`` (the node list's signature or form), ``node_list_mismatch``
    (signed for another dispatcher log, or never recorded in it), ``dispatcher_log_failed``,
    ``node_log_failed``, ``node_log_missing``, ``unknown_node``, ``wrong_node`` (a receipt
    that points at another node's log), ``malformed_receipt``, ``code_mismatch`` (the node
    recorded other code than the dispatcher sent), and the receipt kinds ``record_missing``,
    ``hash_mismatch``, ``wrong_record``, ``wrong_key``, ``wrong_log``.
    """

    kind: str
    message: str
    node: str | None = None
    seq: int | None = None  # in the dispatcher's log for receipt problems, else in the node's
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "node": self.node,
            "seq": self.seq,
            "run_id": self.run_id,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {v}"
            for k, v in (("node", self.node), ("seq", self.seq), ("run", self.run_id))
            if v is not None
        )
        return f"{self.kind}: {self.message}" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class FleetReport:
    """Fleet verification's findings: every log's own report, and the receipts checked."""

    dispatcher_log: str
    dispatcher_log_id: str | None
    nodes: tuple[str, ...]
    node_logs: Mapping[str, Any]  # node name -> VerificationReport.to_dict()
    receipts: int
    problems: tuple[FleetProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dispatcher_log": self.dispatcher_log,
            "dispatcher_log_id": self.dispatcher_log_id,
            "nodes": list(self.nodes),
            "receipts": self.receipts,
            "problems": [p.to_dict() for p in self.problems],
            "node_logs": dict(self.node_logs),
        }
