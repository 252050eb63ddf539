"""The fleet on a real local multi-node Ray cluster, running real containers on this engine.

The Ray nodes are processes on this machine (loopback); each cellblock node has its own audit log
and key in a temporary directory and shares this machine's Docker engine. Kept small: no CPUs
reserved, no dashboard, the smallest object store.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from cellblock.audit import AuditLog, generate_keypair
from cellblock.fleet import (
    FleetUnavailableError,
    NoCapableNodeError,
    NodeLostError,
    NodeSpec,
    build_node_list,
    verify_fleet,
)
from cellblock.pipeline import PipelineResult
from tests.conftest import managed_containers, wait_until

from ._logtools import records, rewrite_record

# Before Ray is imported (it reads this once): keep "127.0.0.1" as it is, instead of replacing it
# with the machine's address, so that every Ray process of the test talks over loopback only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the fleet tests need Ray: pip install 'cellblock[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

from cellblock.fleet import RayFleet  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICY = Path(__file__).parent.parent / "fixtures" / "runc-open.yaml"
STORE = 80 * 1024 * 1024  # Ray's smallest object store is about 75 MiB
LOOPBACK = "127.0.0.1"  # every Ray process of the test listens on loopback only


def add_node(cluster, name: str):  # type: ignore[no-untyped-def]
    """A Ray node with a resource that pins cellblock node ``name`` to it."""
    return cluster.add_node(
        num_cpus=0,
        resources={f"cbtest_{name}": 1},
        object_store_memory=STORE,
        node_ip_address=LOOPBACK,
    )


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    # a short directory: Ray's socket paths must fit in 107 bytes
    tmp = Path(tempfile.mkdtemp(prefix="cbray", dir="/tmp"))
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(tmp)
    c = None
    try:
        c = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "object_store_memory": STORE,
                "node_ip_address": LOOPBACK,
            },
        )
        nodes = {name: add_node(c, name) for name in ("a", "b")}
        ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
        yield c, nodes
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved


class FleetEnv:
    """Keys and log directories for a dispatcher and its nodes, all under one test directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dispatcher = root / "dispatcher"
        self.dkey, self.dpub = root / "keys" / "dispatcher.key", root / "keys" / "dispatcher.pub"
        self.dkey.parent.mkdir()
        generate_keypair(self.dkey, self.dpub)
        self.node_list = root / "nodes.json"

    def log(self, name: str) -> Path:
        return self.root / "nodes" / name

    def spec(self, name: str, **kw: Any) -> NodeSpec:
        key, pub = self.root / "keys" / f"{name}.key", self.root / "keys" / f"{name}.pub"
        if not key.exists():
            generate_keypair(key, pub)
        return NodeSpec(
            name,
            resources={f"cbtest_{name}": 0.01},
            audit_dir=str(self.log(name)),
            signing_key=str(key),
            **kw,
        )

    def fleet(self, specs: list[NodeSpec], **kw: Any) -> RayFleet:
        kw.setdefault("max_in_flight", 2)
        return RayFleet(
            specs,
            policy=POLICY,
            audit_dir=self.dispatcher,
            signing_key=self.dkey,
            node_list_path=self.node_list,
            **kw,
        )

    def verify(self, names: list[str], **kw: Any):  # type: ignore[no-untyped-def]
        kw.setdefault("node_list", self.node_list)
        kw.setdefault("node_logs", {n: self.log(n) for n in names})
        return verify_fleet(self.dispatcher, trust_root=self.dpub, **kw)

    def cli(self, names: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-m", "cellblock.cli", "audit", "verify-fleet"]
        args += ["--audit-dir", str(self.dispatcher), "--node-list", str(self.node_list)]
        args += ["--trust-root", str(self.dpub)]
        for n in names:
            args += ["--node-log", f"{n}={self.log(n)}"]
        return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=300)


def fleet_records(env: FleetEnv, type_: str) -> list[dict[str, Any]]:
    return [r["payload"] for r in records(env.dispatcher) if r["type"] == type_]


def test_a_batch_spreads_over_the_nodes_in_order_under_the_cap(
    cluster, tmp_path: Path, docker_client, capsys
) -> None:  # type: ignore[no-untyped-def]
    env = FleetEnv(tmp_path)
    # node a offers runc only; b offers what the engine has (runc and gVisor)
    with env.fleet([env.spec("a", runtimes=("runc",)), env.spec("b")]) as fleet:
        ids = {n.name: n for n in fleet.nodes()}
        assert ids["a"].runtimes == ("runc",) and "runsc" in ids["b"].runtimes
        assert ids["a"].log_id != ids["b"].log_id and ids["a"].key_id != ids["b"].key_id
        # Ray starts workers at nice 15; the nodes ask for 0 (the tests run as root, so they get it)
        assert {n.niceness for n in ids.values()} == ({0} if os.geteuid() == 0 else {15})

        programs = [f"import time\ntime.sleep(0.5)\nprint({i} * {i})\n" for i in range(8)]
        out = fleet.map(programs)
        peaks, stats = fleet.peak_in_flight(), fleet.node_stats()
        assert capsys.readouterr().err == ""  # no bar: stderr is not a terminal

        gvisor = fleet.map(["print('hi')\n"] * 3, runtime="runsc", progress=True)
        bar = capsys.readouterr().err
    # results in the caller's order, on both nodes, never more than the cap on either
    assert all(isinstance(r, PipelineResult) for r in out)
    assert [r.execution.stdout for r in out] == [f"{i * i}\n" for i in range(8)]  # type: ignore[union-attr]
    by_log = {n.log_id: name for name, n in ids.items()}
    placed = [by_log[r.receipt.log_id] for r in out]  # type: ignore[union-attr]
    assert set(placed) == {"a", "b"}
    assert max(peaks.values()) == 2 and all(1 <= p <= 2 for p in peaks.values())
    assert all(1 <= s["peak"] <= 2 for s in stats.values()), stats  # as counted on the node
    # gVisor only where it is offered, and really gVisor
    assert [by_log[r.receipt.log_id] for r in gvisor] == ["b"] * 3  # type: ignore[union-attr]
    assert [r.execution.runtime for r in gvisor] == ["runsc"] * 3  # type: ignore[union-attr]
    assert "3/3" in bar  # the progress bar, asked for explicitly (stderr is not a terminal)

    # every receipt is in the dispatcher's log and in the right node's log; every log verifies
    receipts = fleet_records(env, "fleet.receipt")
    # (recorded as they come back, so sorted here)
    assert sorted((p["index"], p["node"]) for p in receipts[:8]) == list(enumerate(placed))
    report = env.verify(["a", "b"])
    assert report.ok, report.problems
    assert report.receipts == 11 and set(report.nodes) == {"a", "b"}
    done = env.cli(["a", "b"], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True

    # tampering with node a's log is named, with the node
    b_receipt = next(p for p in receipts if p["node"] == "b")
    a_receipt = next(p for p in receipts if p["node"] == "a")
    shutil.copytree(env.log("a"), tmp_path / "a-clean")
    rewrite_record(
        env.log("a"), a_receipt["receipt"]["finished"]["seq"], {"exit_code": 3}, rehash=True
    )
    report = env.verify(["a", "b"])
    assert not report.ok
    assert {(p.kind, p.node) for p in report.problems} >= {("node_log_failed", "a")}
    assert "hash_mismatch" in report.kinds()  # the receipt no longer matches the record
    done = env.cli(["a", "b"])
    assert done.returncode == 1 and "node_log_failed" in done.stdout and "node a" in done.stdout
    shutil.rmtree(env.log("a"))
    shutil.copytree(tmp_path / "a-clean", env.log("a"))
    assert env.verify(["a", "b"]).ok

    # node logs given under each other's names: each fails against the listed key
    swapped = env.verify([], node_logs={"a": env.log("b"), "b": env.log("a")})
    assert {p.node for p in swapped.problems if p.kind == "node_log_failed"} == {"a", "b"}
    # a node's log left out, or given under a name the list does not have
    missing = env.verify([], node_logs={"a": env.log("a")})
    assert [(p.kind, p.node) for p in missing.problems] == [("node_log_missing", "b")]
    stray = env.verify(
        ["a", "b"], node_logs={"a": env.log("a"), "b": env.log("b"), "z": env.log("b")}
    )
    assert [(p.kind, p.node) for p in stray.problems] == [("unknown_node", "z")]

    # a node list edited after signing, or signed by someone else
    signed = json.loads(env.node_list.read_text())
    edited = json.loads(json.dumps(signed))
    edited["nodes"][0]["log_id"] = ids["b"].log_id
    assert "node_list_invalid" in env.verify(["a", "b"], node_list=edited).kinds()
    other_key, other_pub = tmp_path / "keys" / "other.key", tmp_path / "keys" / "other.pub"
    generate_keypair(other_key, other_pub)
    from cellblock.audit._keys import load_private

    forged = build_node_list(load_private(other_key), signed["fleet_log_id"], fleet.nodes(), 9)
    assert "node_list_invalid" in env.verify(["a", "b"], node_list=forged).kinds()

    # the dispatcher's log (signed with its real key) says node a ran what b's log holds
    with AuditLog.open(env.dispatcher, signing_key=env.dkey) as log:
        log.append("fleet.receipt", {**b_receipt, "node": "a"})
    report = env.verify(["a", "b"])
    wrong = [p for p in report.problems if p.kind == "wrong_node"]
    assert len(wrong) == 1 and wrong[0].node == "a" and "node b's" in wrong[0].message
    assert wrong[0].run_id == b_receipt["run_id"]
    done = env.cli(["a", "b"], "--json")
    assert done.returncode == 1
    assert [p["kind"] for p in json.loads(done.stdout)["problems"]] == ["wrong_node"]


def _running_on(client, pid: int) -> int:  # type: ignore[no-untyped-def]
    return len([c for c in managed_containers(client, pid) if c.get("State") == "running"])


def _map_in_thread(
    fleet: RayFleet, programs: list[str], **kw: Any
) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(fleet.map(programs, progress=False, **kw)))
    thread.start()
    return thread, box


def test_node_loss_is_named_never_silently_rerun_and_rerun_when_asked(
    cluster, tmp_path: Path, docker_client
) -> None:  # type: ignore[no-untyped-def]
    c, _ = cluster
    extra = {name: add_node(c, name) for name in ("c", "d")}
    env = FleetEnv(tmp_path)
    sleeper = "import time\ntime.sleep(6)\nprint({i})\n"
    with env.fleet([env.spec("a", runtimes=("runc",)), env.spec("c"), env.spec("d")]) as fleet:
        pids = {n.name: n.pid for n in fleet.nodes()}

        # 1. node c is lost with two programs in flight: they come back as errors naming it
        thread, box = _map_in_thread(fleet, [sleeper.format(i=i) for i in range(6)])
        assert wait_until(lambda: _running_on(docker_client, pids["c"]) == 2, timeout=240)
        c.remove_node(extra["c"], allow_graceful=False)
        thread.join(timeout=300)
        out = box[0]
        lost = [r for r in out if isinstance(r, NodeLostError)]
        assert len(lost) == 2 and {e.node for e in lost} == {"c"}
        assert all("node c" in str(e) and "not rerun" in str(e) for e in lost)
        assert [r.execution.stdout for r in out if isinstance(r, PipelineResult)] == [
            f"{i}\n" for i, r in enumerate(out) if isinstance(r, PipelineResult)
        ]
        assert len([r for r in out if isinstance(r, PipelineResult)]) == 4
        assert fleet.lost() == ["c"]
        # c's own log shows both programs started, and nothing of them finished
        c_types = [r["type"] for r in records(env.log("c"))]
        assert c_types.count("execution.started") == 2 and "execution.finished" not in c_types
        # and nothing it started outlives it on the engine
        assert wait_until(lambda: not managed_containers(docker_client, pids["c"]), timeout=120)

        # 2. node d is lost while the caller asked for reruns: they run on a, and it is recorded
        thread, box = _map_in_thread(
            fleet, [sleeper.format(i=i) for i in range(4)], rerun_lost=True
        )
        assert wait_until(lambda: _running_on(docker_client, pids["d"]) == 2, timeout=240)
        c.remove_node(extra["d"], allow_graceful=False)
        thread.join(timeout=300)
        out = box[0]
        assert all(isinstance(r, PipelineResult) for r in out), out
        assert [r.execution.stdout for r in out] == [f"{i}\n" for i in range(4)]
        reruns = fleet_records(env, "fleet.rerun")
        assert len(reruns) == 2 and {p["node"] for p in reruns} == {"d"}
        assert {p["node"] for p in fleet_records(env, "fleet.node_lost")} == {"c", "d"}
        assert wait_until(lambda: not managed_containers(docker_client, pids["d"]), timeout=120)

        # 3. gVisor is needed and only a (runc) is left: a clear error, never a fallback
        (refused,) = fleet.map(["print(1)\n"], runtime="runsc", progress=False)
        assert isinstance(refused, NoCapableNodeError)
        assert "runsc" in str(refused) and "live nodes: a" in str(refused)

    report = env.verify(["a", "c", "d"])
    assert report.ok, report.problems
    assert report.receipts == 8  # 4 of batch 1 and 4 of batch 2


def test_a_node_that_cannot_start_is_named_with_the_reason(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = FleetEnv(tmp_path)
    good = env.spec("a")
    bad = NodeSpec(
        "b",
        resources={"cbtest_b": 0.01},
        audit_dir=str(env.log("b")),
        signing_key=str(tmp_path / "no-such.key"),
    )
    with pytest.raises(FleetUnavailableError) as info:
        env.fleet([good, bad])
    message = str(info.value)
    assert message.startswith("node b did not start: ")
    assert "no-such.key" in message and "Traceback" not in message
    assert "\n" not in message
    # nothing was left running: the good node's actor was killed and its log closed
    assert not [a for a in ray.util.list_named_actors() if a.startswith("cellblock-node-")]
