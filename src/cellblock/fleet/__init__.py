"""Fleet: run across machines on Ray, with a signed log per node and verifiable receipts.

Each node runs an ordinary Pipeline (policy, warm pool, key, audit log) on its own engine; the
dispatcher carries program text there and the result back, and records every receipt in its own
log. Verification needs no Ray::

    import ray
    from cellblock.fleet import NodeSpec, RayFleet, verify_fleet

    ray.init(address="auto")
    with RayFleet(cluster_nodes(), policy="standard", audit_dir=dispatcher_dir,
                  node_list_path=nodes_json) as fleet:
        results = fleet.map(programs)            # results in the caller's order
    verify_fleet(dispatcher_dir, trust_root=pub, node_list=nodes_json, node_logs={...})

``RayFleet`` and ``cluster_nodes`` import Ray (``pip install 'cellblock[ray]'``) when first used.
See docs/scale-out.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellblock.fleet._nodelist import NodeListError, build_node_list, check_node_list
from cellblock.fleet._verify import verify_fleet
from cellblock.fleet.interface import (
    Dispatcher,
    FleetError,
    FleetOutcome,
    FleetProblem,
    FleetReport,
    FleetUnavailableError,
    NoCapableNodeError,
    NodeIdentity,
    NodeLostError,
    NodeRunError,
    NodeSpec,
)

if TYPE_CHECKING:
    from cellblock.fleet._dispatcher import RayFleet, cluster_nodes

__all__ = [
    "Dispatcher",
    "FleetError",
    "FleetOutcome",
    "FleetProblem",
    "FleetReport",
    "FleetUnavailableError",
    "NoCapableNodeError",
    "NodeIdentity",
    "NodeListError",
    "NodeLostError",
    "NodeRunError",
    "NodeSpec",
    "RayFleet",
    "build_node_list",
    "check_node_list",
    "cluster_nodes",
    "verify_fleet",
]


def __getattr__(name: str) -> Any:
    # Ray is imported only by the dispatcher, and only when it is used
    if name in ("RayFleet", "cluster_nodes"):
        from cellblock.fleet import _dispatcher

        return getattr(_dispatcher, name)
    raise AttributeError(f"module 'cellblock.fleet' has no attribute {name!r}")
