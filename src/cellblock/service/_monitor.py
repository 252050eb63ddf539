"""Live cells: owner, age, CPU %, memory, pids and runtime, read from the host's cgroups.

Used by ``cellblock ps``/``top`` and by ``/metrics``. Cells are the engine's containers labelled
``cellblock.managed=1``; figures come from the cgroup files of each container (v1 with the
cgroupfs driver, or v2), so reading them costs no engine round trip. A cell whose cgroup cannot
be read (remote engine, rootless) shows no figures rather than wrong ones.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellblock.sandbox.interface import Backend

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CellInfo:
    container_id: str
    kind: str  # "cell", or "session" once sessions exist (label cellblock.kind)
    state: str
    owner_pid: int | None
    owner: str
    age_s: float
    runtime: str
    cpu_percent: float | None
    cpu_seconds: float | None
    memory_bytes: int | None
    pids: int | None

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.short_id,
            "container_id": self.container_id,
            "kind": self.kind,
            "state": self.state,
            "owner_pid": self.owner_pid,
            "owner": self.owner,
            "age_s": round(self.age_s, 3),
            "runtime": self.runtime,
            "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 1),
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
            "pids": self.pids,
        }


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _cgroup_dirs(controller: str, cid: str) -> list[Path]:
    return [
        CGROUP_ROOT / controller / "docker" / cid,  # v1, cgroupfs driver
        CGROUP_ROOT / controller / "system.slice" / f"docker-{cid}.scope",  # v1, systemd
    ]


def _v2_dir(cid: str) -> Path | None:
    for d in (CGROUP_ROOT / "system.slice" / f"docker-{cid}.scope", CGROUP_ROOT / "docker" / cid):
        if (d / "cgroup.procs").exists():
            return d
    return None


def cgroup_figures(cid: str) -> tuple[float | None, int | None, int | None]:
    """(CPU seconds, memory bytes, pids) of one container, None where unreadable."""
    v2 = _v2_dir(cid)
    if v2 is not None:
        cpu = None
        with contextlib.suppress(OSError, ValueError):
            for line in (v2 / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    cpu = int(line.split()[1]) / 1e6
        return cpu, _read_int(v2 / "memory.current"), _read_int(v2 / "pids.current")
    cpu_s: float | None = None
    for d in _cgroup_dirs("cpuacct", cid) + _cgroup_dirs("cpu,cpuacct", cid):
        ns = _read_int(d / "cpuacct.usage")
        if ns is not None:
            cpu_s = ns / 1e9
            break
    memory = next(
        (m for d in _cgroup_dirs("memory", cid) if (m := _read_int(d / "memory.usage_in_bytes"))),
        None,
    )
    pids = next(
        (p for d in _cgroup_dirs("pids", cid) if (p := _read_int(d / "pids.current")) is not None),
        None,
    )
    return cpu_s, memory, pids


def _owner_name(pid: int | None) -> str:
    if pid is None:
        return "?"
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} ({comm})"


def live_cells(
    backend: Backend, *, owned_by_me: bool = False, sample_s: float = 0.5
) -> list[CellInfo]:
    """Every live cellblock container (or only this process's), with figures from the cgroups.

    CPU % is measured over ``sample_s`` seconds (0: not measured).
    """
    client = getattr(backend, "client", None)
    if client is None:
        return []
    labels = ["cellblock.managed=1"]
    if owned_by_me:
        labels.append(f"cellblock.owner_pid={os.getpid()}")
    try:
        containers = client.api.containers(all=True, filters={"label": labels})
    except Exception:  # the engine went away between scrapes: report nothing, not an error
        return []
    first = {c["Id"]: cgroup_figures(c["Id"]) for c in containers}
    t0 = time.monotonic()
    if sample_s > 0 and containers:
        time.sleep(sample_s)
    elapsed = time.monotonic() - t0
    now = time.time()
    cells = []
    for c in containers:
        cid = c["Id"]
        lab = c.get("Labels") or {}
        cpu1, _, _ = first[cid]
        cpu2, memory, pids = cgroup_figures(cid)
        percent = None
        if sample_s > 0 and cpu1 is not None and cpu2 is not None and elapsed > 0:
            percent = 100.0 * (cpu2 - cpu1) / elapsed
        try:
            owner_pid: int | None = int(lab.get("cellblock.owner_pid", ""))
        except ValueError:
            owner_pid = None
        try:
            created = float(lab.get("cellblock.created", ""))
        except ValueError:
            created = float(c.get("Created", now))
        runtime = "?"
        with contextlib.suppress(Exception):
            runtime = client.api.inspect_container(cid)["HostConfig"].get("Runtime") or "runc"
        cells.append(
            CellInfo(
                container_id=cid,
                kind=lab.get("cellblock.kind", "cell"),
                state=str(c.get("State", "?")),
                owner_pid=owner_pid,
                owner=lab.get("cellblock.caller") or _owner_name(owner_pid),
                age_s=max(0.0, now - created),
                runtime=runtime,
                cpu_percent=percent,
                cpu_seconds=cpu2,
                memory_bytes=memory,
                pids=pids,
            )
        )
    return sorted(cells, key=lambda cell: -cell.age_s)
