"""The Ray dispatcher: node actors, least-loaded placement under a per-node cap, node loss.

Ray carries program text to a node actor and a :class:`PipelineResult` back; nothing else
crosses the wire. Each actor's method calls are never retried by Ray (``max_task_retries=0``):
a program whose node is lost is reported, and rerun elsewhere only when the caller asks, which
the dispatcher's log records.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from cellblock.audit import (
    AuditLog,
    AuditWriteError,
    default_private_key,
    default_public_key,
    ensure_keypair,
)
from cellblock.audit._keys import load_private
from cellblock.errors import CellblockError
from cellblock.fleet._node import NodeFailure, NodeServer, program_digest
from cellblock.fleet._nodelist import build_node_list, node_list_digest
from cellblock.fleet._progress import ProgressBar
from cellblock.fleet.interface import (
    Dispatcher,
    FleetError,
    FleetOutcome,
    FleetUnavailableError,
    NoCapableNodeError,
    NodeIdentity,
    NodeLostError,
    NodeRunError,
    NodeSpec,
)
from cellblock.pipeline import PipelineResult
from cellblock.policy import LoadedPolicy, Policy, load_policy


def _ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise FleetUnavailableError(
            "the fleet needs Ray; install it with: pip install 'cellblock[ray]'"
        ) from None
    return ray


@dataclass
class _Node:
    spec: NodeSpec
    actor: Any
    identity: NodeIdentity
    cap: int
    alive: bool = True
    in_flight: int = 0
    peak: int = 0
    sent: int = 0


def _pinned_runtimes(policy: Policy) -> frozenset[str]:
    """Runtimes the policy names outright: a node must have each to run any program of it."""
    return frozenset(p.runtime for p in policy.profiles.values() if p.runtime != "auto")


class RayFleet(Dispatcher):
    """A fleet of node actors on the Ray cluster this process is connected to (``ray.init``).

    ``audit_dir`` and ``signing_key`` are the dispatcher's own log and key (on this machine);
    every node keeps its own. ``node_list_path``, when given, receives the signed node list.
    """

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        *,
        policy: Policy | LoadedPolicy | str | Path | None = None,
        audit_dir: Path,
        signing_key: Path | None = None,
        node_list_path: Path | None = None,
        max_in_flight: int = 2,
        use_pool: bool | None = None,
        warm: bool = True,
        start_timeout_s: float = 600.0,
    ) -> None:
        ray = _ray()
        if not ray.is_initialized():
            raise FleetUnavailableError(
                "Ray is not initialised; call ray.init(address=...) before starting a fleet"
            )
        if not nodes:
            raise FleetError("a fleet needs at least one node")
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise FleetError(f"node names must be unique, got {names}")
        if max_in_flight < 1:
            raise FleetError("max_in_flight must be at least 1")
        self._ray = ray
        self._loaded: Policy | LoadedPolicy = (
            policy if isinstance(policy, Policy | LoadedPolicy) else load_policy(policy)
        )
        base = self._loaded.policy if isinstance(self._loaded, LoadedPolicy) else self._loaded
        self._needs = _pinned_runtimes(base)
        key = Path(signing_key) if signing_key is not None else default_private_key()
        if signing_key is None:
            ensure_keypair(key, default_public_key())
        self._key = load_private(key)
        self._log = AuditLog.open(Path(audit_dir), signing_key=key)
        self._nodes: dict[str, _Node] = {}
        self._busy = threading.Lock()  # one batch at a time: placement state is not shared
        self._list_version = 0
        self.node_list: dict[str, Any] = {}
        try:
            self._start(nodes, max_in_flight, use_pool, warm, start_timeout_s)
        except BaseException:
            self._kill_all()
            self._log.close()
            raise
        if node_list_path is not None:
            self.write_node_list(node_list_path)

    # -- start ---------------------------------------------------------------------------------

    def _start(
        self,
        specs: Sequence[NodeSpec],
        cap: int,
        use_pool: bool | None,
        warm: bool,
        timeout_s: float,
    ) -> None:
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor_class = ray.remote(NodeServer)
        joined = {"fleet_log_id": self._log.log_id, "dispatcher_key": self._log.key_id}
        started: list[tuple[NodeSpec, Any, int]] = []
        for spec in specs:
            node_cap = spec.max_in_flight or cap
            options: dict[str, Any] = {
                "num_cpus": 0,  # the work happens in containers, not in the actor
                "max_concurrency": node_cap + 2,  # the cap, plus identity/stats/close calls
                "max_restarts": 0,
                "max_task_retries": 0,  # never rerun a program behind the caller's back
                "name": f"cellblock-node-{spec.name}-{self._log.log_id[:8]}",
            }
            if spec.ray_node_id:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    spec.ray_node_id, soft=False
                )
            if spec.resources:
                options["resources"] = dict(spec.resources)
            actor = actor_class.options(**options).remote(
                spec.name,
                self._loaded,
                audit_dir=spec.audit_dir,
                signing_key=spec.signing_key,
                use_pool=use_pool,
                warm=warm,
                joined=joined,
                offer=spec.runtimes,
                niceness=spec.niceness,
            )
            started.append((spec, actor, node_cap))
            # registered before it answers, so that a failed start still kills it
            self._nodes[spec.name] = _Node(spec, actor, _UNKNOWN, node_cap, alive=False)
        for spec, actor, node_cap in started:
            try:
                info = ray.get(actor.identity.remote(), timeout=timeout_s)
            except Exception as exc:
                raise FleetUnavailableError(
                    f"node {spec.name} did not start: {_short(exc)}"
                ) from None
            if "error" in info:
                raise FleetUnavailableError(f"node {spec.name} did not start: {info['error']}")
            identity = NodeIdentity(**{**info, "runtimes": tuple(info["runtimes"])})
            self._nodes[spec.name] = _Node(spec, actor, identity, node_cap)
        self._publish_node_list()

    def _publish_node_list(self) -> None:
        self._list_version += 1
        self.node_list = build_node_list(
            self._key,
            self._log.log_id,
            (n.identity for n in self._nodes.values()),
            self._list_version,
        )
        self._log.append(
            "fleet.nodes",
            {
                "version": self._list_version,
                "node_list_sha256": node_list_digest(self.node_list),
                "nodes": [n.identity.to_dict() for n in self._nodes.values()],
            },
        )

    def write_node_list(self, path: Path) -> None:
        """Write the signed node list (JSON) for ``cellblock audit verify-fleet``."""
        import json

        Path(path).write_text(json.dumps(self.node_list, indent=2) + "\n", encoding="utf-8")

    # -- the batch -----------------------------------------------------------------------------

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
        with self._busy:
            return self._map(codes, runtime, rerun_lost, skip_assessment, limits_override, progress)

    def _map(
        self,
        codes: Sequence[str | bytes],
        runtime: str | None,
        rerun_lost: bool,
        skip_assessment: bool,
        limits_override: Mapping[str, Any] | None,
        progress: bool | None,
    ) -> list[FleetOutcome]:
        codes = list(codes)
        needs = self._needs | ({runtime} if runtime else frozenset())
        override = dict(limits_override or {})
        if runtime:
            override["runtime"] = runtime
        options = {
            "needs": sorted(needs),
            "skip_assessment": skip_assessment,
            "limits_override": override,
        }
        batch = uuid.uuid4().hex
        results: list[FleetOutcome | None] = [None] * len(codes)
        digests: list[str] = []
        for i, code in enumerate(codes):
            try:
                digests.append(program_digest(code))
            except CellblockError as exc:
                digests.append("")
                results[i] = FleetError(f"program #{i}: {exc}")
        pending = deque(i for i in range(len(codes)) if results[i] is None)
        in_flight: dict[Any, tuple[int, _Node]] = {}
        bar = ProgressBar(len(codes), enabled=progress)
        failed = sum(1 for r in results if r is not None)

        def settle(i: int, outcome: FleetOutcome) -> None:
            nonlocal failed
            results[i] = outcome
            if isinstance(outcome, FleetError):
                failed += 1

        try:
            while pending or in_flight:
                while pending:
                    i = pending[0]
                    capable = [
                        n
                        for n in self._nodes.values()
                        if n.alive and needs <= set(n.identity.runtimes)
                    ]
                    if not capable:
                        pending.popleft()
                        settle(i, self._unplaceable(batch, i, digests[i], needs))
                        continue
                    free = [n for n in capable if n.in_flight < n.cap]
                    if not free:
                        break  # backpressure: every capable node is at its cap
                    node = min(free, key=lambda n: (n.in_flight / n.cap, n.sent, n.spec.name))
                    ref = node.actor.run.remote(codes[i], options)
                    in_flight[ref] = (i, node)
                    node.in_flight += 1
                    node.sent += 1
                    node.peak = max(node.peak, node.in_flight)
                    pending.popleft()
                if not in_flight:
                    continue
                ready, _ = self._ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    i, node = in_flight.pop(ref)
                    node.in_flight -= 1
                    outcome = self._collect(batch, ref, i, node, digests[i], rerun_lost)
                    if outcome is None:
                        pending.appendleft(i)  # rerun, as the caller asked (recorded)
                    else:
                        settle(i, outcome)
                bar.update(
                    done=sum(1 for r in results if r is not None),
                    failed=failed,
                    in_flight={n.spec.name: n.in_flight for n in self._nodes.values()},
                )
        finally:
            bar.update(
                done=sum(1 for r in results if r is not None),
                failed=failed,
                in_flight={},
                force=True,
            )
            bar.close()
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _collect(
        self, batch: str, ref: Any, i: int, node: _Node, digest: str, rerun_lost: bool
    ) -> FleetOutcome | None:
        """The outcome of one finished call, recorded; None when it is to be rerun."""
        ray = self._ray
        base = {"batch": batch, "index": i, "node": node.spec.name, "code_sha256": digest}
        try:
            value = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
            self._lost(node, exc)
            if rerun_lost:
                self._record("fleet.rerun", {**base, "reason": "node lost"})
                return None
            self._record("fleet.lost", base)
            return NodeLostError(
                f"node {node.spec.name} was lost while program #{i} was in flight: "
                f"{_short(exc)}; it was not rerun (the node's own log shows whether it "
                "started; pass rerun_lost=True to rerun such programs elsewhere)",
                node=node.spec.name,
                index=i,
            )
        except ray.exceptions.RayError as exc:
            self._record("fleet.error", {**base, "error": _short(exc)})
            return NodeRunError(
                f"node {node.spec.name}: program #{i} failed in transit: {_short(exc)}",
                node=node.spec.name,
                index=i,
                kind=type(exc).__name__,
                exit_code=70,
            )
        if isinstance(value, NodeFailure):
            receipt = None
            if value.result is not None and value.result.receipt is not None:
                receipt = value.result.receipt.to_dict()
            self._record(
                "fleet.error",
                {**base, "error": value.message, "kind": value.kind, "receipt": receipt},
            )
            return NodeRunError(
                f"node {node.spec.name}: {value.message}",
                node=node.spec.name,
                index=i,
                kind=value.kind,
                exit_code=value.exit_code,
            )
        assert isinstance(value, PipelineResult)
        receipt = None if value.receipt is None else value.receipt.to_dict()
        self._record(
            "fleet.receipt",
            {**base, "run_id": value.run_id, "status": value.status, "receipt": receipt},
        )
        return value

    def _unplaceable(self, batch: str, i: int, digest: str, needs: frozenset[str]) -> FleetError:
        live = sorted(n.spec.name for n in self._nodes.values() if n.alive)
        self._record(
            "fleet.unplaceable",
            {"batch": batch, "index": i, "code_sha256": digest, "needs": sorted(needs)},
        )
        return NoCapableNodeError(
            f"program #{i} needs {', '.join(sorted(needs)) or 'a node'} and no live node offers "
            f"it (live nodes: {', '.join(live) or 'none'}); it was not run",
            needs=needs,
            index=i,
        )

    def _lost(self, node: _Node, exc: BaseException) -> None:
        if node.alive:
            node.alive = False
            self._record(
                "fleet.node_lost",
                {"node": node.spec.name, "in_flight": node.in_flight + 1, "error": _short(exc)},
            )

    def _record(self, type_: str, payload: Mapping[str, Any]) -> None:
        try:
            self._log.append(type_, payload)
        except AuditWriteError as exc:
            raise FleetError(
                f"the dispatcher's log cannot record '{type_}' ({exc}); stopping the batch"
            ) from exc

    # -- state and lifetime --------------------------------------------------------------------

    def nodes(self) -> list[NodeIdentity]:
        return [n.identity for n in self._nodes.values()]

    def lost(self) -> list[str]:
        return [name for name, n in self._nodes.items() if not n.alive]

    def in_flight(self) -> dict[str, int]:
        return {name: n.in_flight for name, n in self._nodes.items()}

    def peak_in_flight(self) -> dict[str, int]:
        """The most programs each node had in flight at once, as the dispatcher counted them."""
        return {name: n.peak for name, n in self._nodes.items()}

    def node_stats(self) -> dict[str, dict[str, int]]:
        """What each live node counts itself: programs running now, the most at once, done."""
        live = [n for n in self._nodes.values() if n.alive]
        stats = self._ray.get([n.actor.stats.remote() for n in live], timeout=60)
        return {n.spec.name: s for n, s in zip(live, stats, strict=True)}

    @property
    def log(self) -> AuditLog:
        return self._log

    def close(self) -> None:
        live = [n for n in self._nodes.values() if n.alive]
        errors: list[str] = []
        for node, ref in [(n, n.actor.close.remote()) for n in live]:
            try:
                self._ray.get(ref, timeout=120)
            except Exception as exc:
                errors.append(f"{node.spec.name}: {_short(exc)}")
        self._kill_all()
        self._log.close()
        if errors:
            raise FleetError("some nodes did not close cleanly: " + "; ".join(errors))

    def _kill_all(self) -> None:
        for node in self._nodes.values():
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(node.actor, no_restart=True)
            node.alive = False

    def __enter__(self) -> RayFleet:
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
        with contextlib.suppress(CellblockError):  # the error on its way out says more
            self.close()


_UNKNOWN = NodeIdentity("", "", "", "", (), "", 0, "")  # a node that has not answered yet


def _short(exc: BaseException) -> str:
    """The first line of an error, bounded: Ray's messages carry whole remote tracebacks."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def cluster_nodes(prefix: str = "") -> list[NodeSpec]:
    """One NodeSpec per live Ray node, pinned to it, named ``<prefix><host>-<id8>``."""
    ray = _ray()
    specs = []
    for info in ray.nodes():
        if not info.get("Alive"):
            continue
        node_id = info["NodeID"]
        host = info.get("NodeManagerHostname") or info.get("NodeManagerAddress") or "node"
        specs.append(NodeSpec(name=f"{prefix}{host}-{node_id[:8]}", ray_node_id=node_id))
    return specs
