"""Shared helpers for the cellblock benchmarks: statistics, tables, machine facts, raw containers.

Nothing here changes the library; the raw Docker helpers build containers with exactly the
hardened ``HostConfig`` of :meth:`DockerBackend.host_config` on the same image, so the only
difference from a cellblock run is what cellblock does on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_LABEL = "cellblock.bench"
BENCH_PID_LABEL = "cellblock.bench_pid"
SANDBOX_USER = "10001:10001"
PRINT1 = "print(1)"


# -- statistics and tables ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, Any]:
    """p50/p90/mean/min/max in milliseconds of samples given in seconds."""
    if not values:
        return {"n": 0}
    ms = [v * 1000.0 for v in values]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def verdict(name: str, ok: bool | None, detail: str) -> dict[str, Any]:
    word = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
    print(f"{word}: {name}: {detail}")
    return {"goal": name, "result": word, "detail": detail}


# -- machine facts --------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info(client: Any | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "python_bench": sys.version.split()[0],
        "python_executable": sys.executable,
        "loadavg_at_start": list(os.getloadavg()),
    }
    with contextlib.suppress(OSError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        info["memory_gib"] = round(kib / 1024 / 1024, 1)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["/usr/bin/python3", "-V"], capture_output=True, text=True, timeout=10)
        info["python_host_usr_bin"] = out.stdout.strip() or out.stderr.strip()
    if client is not None:
        with contextlib.suppress(Exception):
            dinfo = client.info()
            version = client.version()
            info.update(
                {
                    "docker_version": version.get("Version"),
                    "docker_api_version": version.get("ApiVersion"),
                    "storage_driver": dinfo.get("Driver"),
                    "cgroup_version": dinfo.get("CgroupVersion"),
                    "cgroup_driver": dinfo.get("CgroupDriver"),
                    "runtimes": sorted((dinfo.get("Runtimes") or {}).keys()),
                    "containerd": (dinfo.get("ContainerdCommit") or {}).get("ID"),
                    "runc": (dinfo.get("RuncCommit") or {}).get("ID"),
                    "os": dinfo.get("OperatingSystem"),
                }
            )
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["runsc", "--version"], capture_output=True, text=True, timeout=10)
        info["runsc_version"] = out.stdout.splitlines()[0] if out.stdout else None
    return info


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


# -- host baselines -------------------------------------------------------------------------------


def host_python(executable: str, code: str = PRINT1) -> Callable[[], None]:
    def run() -> None:
        out = subprocess.run([executable, "-c", code], capture_output=True, check=True)
        if out.stdout.strip() != b"1":
            raise RuntimeError(f"{executable} printed {out.stdout!r}")

    return run


# -- raw Docker SDK containers with cellblock's hardening -----------------------------------------


def bench_labels() -> dict[str, str]:
    return {BENCH_LABEL: "1", BENCH_PID_LABEL: str(os.getpid())}


def raw_container_config(
    backend: Any,
    limits: Any,
    entrypoint: list[str],
    *,
    auto_remove: bool,
) -> dict[str, Any]:
    """A create config with the exact hardened HostConfig cellblock uses, but our own command."""
    api = backend.client.api
    host_config = dict(backend.host_config(limits))
    host_config["AutoRemove"] = auto_remove
    return api.create_container_config(
        image=backend.image_id,
        entrypoint=entrypoint,
        command=None,
        user=SANDBOX_USER,
        stdin_open=False,
        tty=False,
        network_disabled=True,
        hostname="cellblock",
        working_dir="/work",
        labels=bench_labels(),
        host_config=host_config,
    )


def _read_all(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read a multiplexed attach stream to EOF; return (stdout, stderr)."""
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    out, err = bytearray(), bytearray()
    pos = 0
    while pos + 8 <= len(buf):
        kind, size = buf[pos], struct.unpack(">I", buf[pos + 4 : pos + 8])[0]
        payload = buf[pos + 8 : pos + 8 + size]
        (out if kind == 1 else err).extend(payload)
        pos += 8 + size
    return bytes(out), bytes(err)


class RawOneShot:
    """create + attach + start + read to EOF + wait + remove, with cellblock's hardening.

    ``auto_remove=True`` keeps the engine's AutoRemove (as cellblock does) and returns at the end
    of the output stream without waiting for the removal, which is what a cellblock cold run does.
    """

    def __init__(self, backend: Any, limits: Any, code: str = PRINT1, *, auto_remove: bool = False):
        self.backend = backend
        self.api = backend.client.api
        self.auto_remove = auto_remove
        self.config = raw_container_config(
            backend, limits, ["python3", "-c", code], auto_remove=auto_remove
        )
        self.phases: list[dict[str, float]] = []

    def __call__(self) -> None:
        api = self.api
        t0 = time.perf_counter()
        cid = api.create_container_from_config(self.config)["Id"]
        t1 = time.perf_counter()
        try:
            raw = api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(raw, "_sock", raw)
            t2 = time.perf_counter()
            api.start(cid)
            t3 = time.perf_counter()
            out, err = _read_all(sock)
            with contextlib.suppress(Exception):
                raw.close()
            t4 = time.perf_counter()
            if out.strip() != b"1":
                raise RuntimeError(f"raw container printed {out!r} {err!r}")
            t5 = t4
            if not self.auto_remove:
                api.wait(cid)
                t5 = time.perf_counter()
        finally:
            if not self.auto_remove:
                force_remove(self.backend.client, cid)
        t6 = time.perf_counter()
        self.phases.append(
            {
                "create": t1 - t0,
                "attach": t2 - t1,
                "start": t3 - t2,
                "output_eof": t4 - t3,
                "wait": t5 - t4,
                "remove": t6 - t5,
            }
        )


class WarmExec:
    """``exec_run`` in one long-lived container with the same hardening (state is shared!)."""

    def __init__(self, backend: Any, limits: Any, code: str = PRINT1):
        self.client = backend.client
        config = raw_container_config(backend, limits, ["sleep", "infinity"], auto_remove=True)
        self.cid = self.client.api.create_container_from_config(config)["Id"]
        self.client.api.start(self.cid)
        self.container = self.client.containers.get(self.cid)
        self.code = code

    def __call__(self) -> None:
        res = self.container.exec_run(
            ["python3", "-c", self.code], user=SANDBOX_USER, workdir="/work"
        )
        if res.exit_code != 0 or res.output.strip() != b"1":
            raise RuntimeError(f"exec_run gave {res.exit_code} {res.output!r}")

    def close(self) -> None:
        force_remove(self.client, self.cid)


def force_remove(client: Any, cid: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        try:
            client.api.remove_container(cid, force=True)
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc) and "No such container" not in str(exc):
                raise


def mine(client: Any) -> list[dict[str, Any]]:
    """Containers this process created: raw bench ones and cellblock-managed ones it owns."""
    pid = str(os.getpid())
    found = client.api.containers(all=True, filters={"label": f"{BENCH_PID_LABEL}={pid}"})
    found += client.api.containers(
        all=True, filters={"label": ["cellblock.managed=1", f"cellblock.owner_pid={pid}"]}
    )
    return found


def cleanup(client: Any, *, settle_s: float = 15.0, extra_names: Sequence[str] = ()) -> int:
    """Wait for auto-removals to finish, then force-remove anything of ours that is left.

    Returns how many containers had to be force-removed.
    """
    end = time.monotonic() + settle_s
    while time.monotonic() < end and mine(client):
        time.sleep(0.2)
    left = mine(client)
    for name in extra_names:
        left += client.api.containers(all=True, filters={"name": name})
    for c in left:
        with contextlib.suppress(Exception):
            force_remove(client, c["Id"])
    if mine(client):
        print("warning: some benchmark containers could not be removed", file=sys.stderr)
    return len(left)


# -- interleaved measurement ----------------------------------------------------------------------


def interleave(
    variants: dict[str, Callable[[], Any]],
    rounds: int,
    *,
    warmup: int = 2,
    before_each: Callable[[str], None] | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Run every variant once per round, round-robin (rotating the order), timing each call."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            if before_each:
                before_each(name)
            variants[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if before_each:
                before_each(name)
            t0 = time.perf_counter()
            variants[name]()
            samples[name].append(time.perf_counter() - t0)
        if progress and (r + 1) % max(1, rounds // 5) == 0:
            print(f"  round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return samples


class LoadSampler:
    """Samples the 1-minute load average once a second in the background (other work on the
    machine shows up here)."""

    def __init__(self, every_s: float = 1.0):
        self.values: list[float] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, args=(every_s,), daemon=True)
        self._thread.start()

    def _loop(self, every_s: float) -> None:
        while not self._stop:
            self.values.append(os.getloadavg()[0])
            time.sleep(every_s)

    def stop(self) -> dict[str, Any]:
        self._stop = True
        self._thread.join(timeout=5)
        if not self.values:
            return {"mean": None, "max": None}
        return {"mean": round(statistics.fmean(self.values), 2), "max": round(max(self.values), 2)}
