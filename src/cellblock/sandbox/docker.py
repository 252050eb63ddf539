"""The Docker backend: hardened single-use containers through the official Docker SDK.

Every container is created with the full hardening set (see ``_host_config``), carries labels
naming its owner process, is started with ``auto_remove`` so the engine deletes it when its
runner exits, and is force-removed in a ``finally`` on every other path. The reaper removes
containers whose owner process is gone (a caller killed with SIGKILL between create and start).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import dataclasses
import itertools
import json
import os
import secrets
import select
import socket
import struct
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from cellblock import __version__
from cellblock.network.interface import Gateway
from cellblock.sandbox import _owner
from cellblock.sandbox.errors import (
    EngineUnavailableError,
    RunnerProtocolError,
    RuntimeUnavailableError,
    SandboxError,
)
from cellblock.sandbox.files import Artifact, FileCaps, RefusedFile, check_name, shown
from cellblock.sandbox.image import (
    IMAGE_TAG,
    SANDBOX_UID,
    SANDBOX_UID_COUNT,
    require_current_image,
)
from cellblock.sandbox.interface import (
    Backend,
    Cell,
    ExecutionResult,
    Limits,
    RunRequest,
    Status,
    classify,
)

LABEL_MANAGED = "cellblock.managed"
CHANNEL_PREFIX = b"CBR1 "
PROTOCOL = 2
# Host-side backstop beyond the program's own deadline (the runner kills at the deadline itself;
# the host kills the whole container if the runner has not reported by then).
HOST_GRACE_S = 0.75
RUNNER_STDERR_CAP = 64 * 1024
RUNSC_HOST_THREADS = 128
# ...plus this many per guest task: on this engine every busy guest process costs gVisor about 7
# host threads (its address-space stub, the Sentry's Go threads running it). With a flat 128 the
# pids cgroup refused gVisor a thread once ~24 guest processes were busy and the whole sandbox died
# ("killed", output lost): that, not memory, was the cause of issue 9 point 3's first symptom.
RUNSC_HOST_THREADS_PER_TASK = 8
# gVisor's own kernel (the Sentry, its Go heap, the address-space stubs and page tables of every
# guest process) lives in the container's memory cgroup. It gets this headroom on top of the
# program's budget, which the runner enforces inside from gVisor's own accounting; the cgroup
# limit (budget + headroom) stays the host's hard backstop. Measured: see docs/sandbox.md.
RUNSC_BASE_HEADROOM = 128 * 1024 * 1024
RUNSC_PER_TASK_HEADROOM = 6 * 1024 * 1024
# The runner's only capabilities. It runs as root of the container so that the program, which it
# drops to the sandbox user with an empty bounding set, does not share its uid: with a shared uid
# the program could prlimit() or renice PID 1 (found by a red-team review) and change what the
# runner reports or when. The runner parses nothing but the host's request.
RUNNER_CAPS = ("SETUID", "SETGID", "SETPCAP", "KILL")
# Paths the engine masks (empty file, or an empty read-only tmpfs for a directory): the engine's
# own defaults (setting the list replaces them) plus what describes the host rather than the
# sandbox: its kernel command line, CPUs, memory, devices, activity and boot identity. Per-process
# files (/proc/self/mountinfo) and system calls (uname, sysinfo) cannot be masked this way;
# docs/sandbox.md lists them and `cellblock doctor` reports them.
MASKED_PATHS = (
    # Docker's defaults
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
    # the host's kernel command line, hardware, memory and activity
    "/proc/cmdline", "/proc/cpuinfo", "/proc/meminfo", "/proc/vmstat", "/proc/zoneinfo",
    "/proc/buddyinfo", "/proc/pagetypeinfo", "/proc/slabinfo", "/proc/diskstats",
    "/proc/partitions", "/proc/interrupts", "/proc/softirqs", "/proc/iomem", "/proc/ioports",
    "/proc/schedstat", "/proc/sys/kernel/random/boot_id", "/sys/devices/virtual/dmi",
)  # fmt: skip


_uid_lock = threading.Lock()
_uid_counter = itertools.count(secrets.randbelow(SANDBOX_UID_COUNT))


def next_sandbox_uid() -> int:
    """A uid for the next cell's program: rotates through the image's range, starting at a random
    point per process, so concurrent cells (even of several callers) rarely share one."""
    with _uid_lock:
        return SANDBOX_UID + next(_uid_counter) % SANDBOX_UID_COUNT


# In a shared cell (opt-in batches) no System V IPC object may be created: one could outlive its
# program, and gVisor has no /proc/sysvipc from which the runner could list and remove it.
SHARED_CELL_REFUSED = ("shmget", "semget", "msgget")


def seccomp_profile(runtime: str = "runc", *, shared: bool = False) -> str:
    raw = resources.files("cellblock.sandbox").joinpath("seccomp.json").read_text()
    profile = json.loads(raw)
    if shared:
        for rule in profile["syscalls"]:
            rule["names"] = [n for n in rule["names"] if n not in SHARED_CELL_REFUSED]
        profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
        profile["syscalls"].append(
            {"names": list(SHARED_CELL_REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        )
    if runtime == "runsc":
        # runsc ignores errnoRet (every refusal is EPERM), so the clone3 -> ENOSYS rule would make
        # glibc's thread creation fail instead of falling back to clone. gVisor's kernel answers
        # clone3 with ENOSYS itself (`cellblock doctor --runtime runsc` checks that it still does).
        rules = [r for r in profile["syscalls"] if r["names"] != ["clone3"]]
        rules.insert(0, {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"})
        profile["syscalls"] = rules
    return json.dumps(profile, separators=(",", ":"))


# The first contact only asks the engine to answer /_ping: a socket that accepts and never
# answers (a stuck engine, something else listening) is named within seconds, not after the
# long timeout that real operations (builds, big images) need.
CONNECT_TIMEOUT_S = 5.0


def connect(base_url: str | None = None, timeout: float = 60.0) -> Any:
    """Connect to the engine, or raise one clear sentence saying why not."""
    import docker
    import docker.constants
    import docker.errors
    import requests.exceptions

    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def client_with(seconds: float, **kwargs: Any) -> Any:
        if base_url:
            return docker.DockerClient(base_url=base_url, timeout=int(seconds), **kwargs)
        return docker.from_env(timeout=int(seconds), **kwargs)

    try:
        # A fixed API version (the oldest, which every engine serves): no /version request
        # before the ping, so that the short timeout covers the whole first contact.
        probe = client_with(CONNECT_TIMEOUT_S, version=docker.constants.MINIMUM_DOCKER_API_VERSION)
        try:
            probe.ping()
        finally:
            probe.close()
        client = client_with(timeout)
        client.ping()
    except requests.exceptions.Timeout as exc:
        raise EngineUnavailableError(
            f"the Docker engine at {where} accepted the connection but did not answer within "
            f"{CONNECT_TIMEOUT_S:g} s; check that a Docker engine (not something else) listens "
            "there and is not stuck, or point DOCKER_HOST at a running engine"
        ) from exc
    except (
        docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError
    ) as exc:
        text = str(exc)
        if "Permission denied" in text or "PermissionError" in text:
            raise EngineUnavailableError(
                f"permission denied on the Docker engine socket ({where}); add your user to the "
                "'docker' group (then log in again) or run cellblock with sudo"
            ) from exc
        raise EngineUnavailableError(
            f"cannot reach the Docker engine at {where}; start it (for example "
            "`sudo systemctl start docker`) or point DOCKER_HOST at a running engine"
        ) from exc
    return client


class DockerBackend(Backend):
    """Runs each program in a fresh hardened container on a Docker engine."""

    name = "docker"

    def __init__(
        self,
        *,
        client: Any | None = None,
        image: str = IMAGE_TAG,
        base_url: str | None = None,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self._client = client if client is not None else connect(base_url)
        self.image = image
        info = require_current_image(self._client, image)
        assert info.image_id is not None
        self.image_id: str = info.image_id
        self.ready_timeout_s = ready_timeout_s
        self._seccomp = {runtime: seccomp_profile(runtime) for runtime in ("runc", "runsc")}
        self._seccomp_shared = {r: seccomp_profile(r, shared=True) for r in ("runc", "runsc")}
        self._runtimes: frozenset[str] | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        return self._client

    def runtimes(self) -> frozenset[str]:
        with self._lock:
            if self._runtimes is None:
                names = set((self._client.info().get("Runtimes") or {}).keys())
                self._runtimes = frozenset(names | {"runc"})
            return self._runtimes

    def check_runtime(self, runtime: str) -> None:
        if runtime not in self.runtimes():
            raise RuntimeUnavailableError(
                f"the container runtime {runtime!r} is not registered with the Docker engine "
                f"(it has: {', '.join(sorted(self.runtimes()))}); for gVisor install runsc "
                "(`apt-get install runsc`) and register it in /etc/docker/daemon.json, see "
                "docs/gvisor.md. cellblock never falls back to another runtime on its own"
            )

    def prepare(
        self, limits: Limits, *, idle_s: float = 0.0, kind: str | None = None
    ) -> DockerCell:
        """``kind`` labels the container (``cellblock.kind``, e.g. ``session``) for ``ps``."""
        self.check_runtime(limits.runtime)
        return DockerCell(self, limits, idle_s=idle_s, kind=kind)

    def reap(self) -> int:
        return reap(self._client)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    # -- container configuration ---------------------------------------------------------

    def host_config(
        self,
        limits: Limits,
        *,
        uid: int = SANDBOX_UID,
        network: str | None = None,
        shared: bool = False,
    ) -> Any:
        from docker.types import LogConfig, Ulimit

        api = self._client.api
        work = (
            f"rw,nosuid,nodev,noexec,size={limits.tmpfs_bytes},mode=0700,"
            f"uid={uid},gid={uid}"
        )
        if shared:  # a shared cell's programs each have their own uid: sticky, like /tmp
            work = f"rw,nosuid,nodev,noexec,size={limits.tmpfs_bytes},mode=1777"
        tmp = f"rw,nosuid,nodev,noexec,size={limits.tmp_bytes},mode=1777"
        kwargs: dict[str, Any] = {
            "auto_remove": True,
            "read_only": limits.read_only_root,
            "cap_drop": ["ALL"],
            "cap_add": list(RUNNER_CAPS),
            "security_opt": self.security_opt(limits, shared=shared),
            "pids_limit": limits.pids,
            "mem_limit": limits.memory_bytes,
            "memswap_limit": limits.memory_bytes + limits.swap_bytes,
            "nano_cpus": int(limits.cpus * 1e9),
            "ulimits": [
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="core", soft=0, hard=0),
            ],
            "tmpfs": {"/work": work, "/tmp": tmp},  # noqa: S108 - the sandbox's own /tmp
            "shm_size": limits.tmp_bytes,
            "ipc_mode": "private",
            "cgroupns": "private",  # /proc/self/cgroup shows "/", not the engine's path
            "log_config": LogConfig(type="none"),  # a flood can never reach the host disk
            "privileged": False,
            "init": False,  # the runner is PID 1 on purpose: in-sandbox signals cannot reach it
        }
        if network is not None:
            # allowlist: the cell's private network; no resolver (its only way out is the proxy)
            kwargs.update(network_mode=network, dns=["127.0.0.1"])
        if limits.runtime != "runc":
            kwargs["runtime"] = limits.runtime
        if limits.runtime == "runsc":
            # gVisor's guest tasks are goroutines: the host pids cgroup does not bound them, so
            # bound them with RLIMIT_NPROC, which gVisor applies per sandbox (under runc it would
            # count every process of that uid on the host, which a uid reused across runs shares).
            nproc = max(1, limits.pids - 1)  # the runner counts against the pids limit under runc
            kwargs["ulimits"].append(Ulimit(name="nproc", soft=nproc, hard=nproc))
            # the host pids cgroup then bounds gVisor's own (Go) threads, which need headroom
            kwargs["pids_limit"] = RUNSC_HOST_THREADS + RUNSC_HOST_THREADS_PER_TASK * limits.pids
            # gVisor's kernel must not come out of the program's budget (the runner enforces that)
            kwargs["mem_limit"] = limits.memory_bytes + runsc_headroom(limits)
            kwargs["memswap_limit"] = kwargs["mem_limit"] + limits.swap_bytes
        host_config = api.create_host_config(**kwargs)
        host_config["MaskedPaths"] = list(MASKED_PATHS)  # the SDK has no parameter for it
        return host_config

    def security_opt(self, limits: Limits, *, shared: bool = False) -> list[str]:
        options = [f"no-new-privileges:{'true' if limits.no_new_privileges else 'false'}"]
        if limits.seccomp == "cellblock":
            profiles = self._seccomp_shared if shared else self._seccomp
            options.append(f"seccomp={profiles[limits.runtime]}")
        elif limits.runtime == "runsc":
            # The engine's default profile names pselect6 and refuses clone3 with errnoRet, which
            # runsc cannot apply (the runner's select() and every thread would fail): under gVisor
            # the "docker-default" loosening means gVisor's kernel alone, as before --oci-seccomp.
            options.append("seccomp=unconfined")
        return options  # "docker-default": the engine's own profile (a recorded loosening)

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED: "1",
            "cellblock.version": __version__,
            "cellblock.created": f"{time.time():.3f}",
            **_owner.labels(),
        }


def runsc_headroom(limits: Limits) -> int:
    """Memory added to a gVisor container's cgroup for gVisor's own kernel."""
    return RUNSC_BASE_HEADROOM + RUNSC_PER_TASK_HEADROOM * limits.pids


class DockerCell(Cell):
    """One created, started and attached container whose runner waits for a program."""

    def __init__(
        self,
        backend: DockerBackend,
        limits: Limits,
        *,
        idle_s: float = 0.0,
        kind: str | None = None,
        shared: bool = False,
    ) -> None:
        import docker.errors

        self.backend = backend
        self.limits = limits
        self.container_id: str | None = None
        self._sock: socket.socket | None = None
        self._raw: Any = None
        self._buffer = bytearray()
        self._stderr = bytearray()
        self._used = False
        self._finished_cleanly = False
        self._oom: _OomWatch | None = None
        self._output: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.uid = next_sandbox_uid()  # the program's uid in this cell
        self.image_id = backend.image_id
        self.gateway: Gateway | None = None
        api = backend.client.api
        try:
            environment = {"CELLBLOCK_IDLE_S": f"{idle_s:g}", "CELLBLOCK_UID": str(self.uid)}
            if shared:  # an opt-in shared cell (batches): the runner serves several programs
                environment["CELLBLOCK_SHARED"] = "1"
            if limits.egress is not None:  # network "allowlist": a private network and a proxy
                from cellblock.network.docker import open_for_cell

                self.gateway, self.image_id, proxy_env = open_for_cell(
                    backend.client,
                    limits.egress,
                    base_image=backend.image_id,
                    user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                    labels=backend.labels(),
                    idle_s=idle_s,
                )
                environment.update(proxy_env)
            config = api.create_container_config(
                image=self.image_id,
                command=None,
                user="0:0",  # the runner; the program runs as self.uid (see RUNNER_CAPS)
                stdin_open=True,
                tty=False,
                network_disabled=self.gateway is None,
                hostname="cellblock",
                working_dir="/work",
                environment=environment,
                labels={**backend.labels(), **({"cellblock.kind": kind} if kind else {})},
                host_config=backend.host_config(
                    limits,
                    uid=self.uid,
                    network=None if self.gateway is None else self.gateway.network_name,
                    shared=shared,
                ),
            )
            config["StdinOnce"] = True  # the engine closes stdin when we hang up; the runner quits
            created = api.create_container_from_config(config)
            self.container_id = created["Id"]
            self._raw = api.attach_socket(
                self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self._sock = _raw_socket(self._raw)
            api.start(self.container_id)
            self._oom = _OomWatch(self.container_id)
            ready = self._read_frame(time.monotonic() + backend.ready_timeout_s)
            if ready is None or ready.get("event") != "ready" or ready.get("v") != PROTOCOL:
                raise RunnerProtocolError(
                    "the sandbox runner did not start "
                    f"({self._stderr.decode(errors='replace').strip()[-300:] or 'no output'}); "
                    "rebuild the image with `cellblock image build --force`"
                )
        except docker.errors.APIError as exc:
            self.discard()
            raise _api_error(exc, limits) from exc
        except BaseException:
            self.discard()
            raise

    @property
    def alive(self) -> bool:
        """Unused, and its runner still there: the engine closes the stream when it exits."""
        if self._used or self._sock is None:
            return False
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
            if readable and not self._sock.recv(1, socket.MSG_PEEK):
                return False  # end of stream: the container is gone
        except OSError:
            return False
        return True

    def discard(self) -> None:
        self._used = True
        self._close_socket()
        if self.container_id is not None and not self._finished_cleanly:
            _force_remove(self.backend.client, self.container_id)
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            gateway.close_later()  # proxy and network go after the caller has its result

    def _close_socket(self) -> None:
        oom, self._oom = self._oom, None
        if oom is not None:
            oom.close()
        (sock, raw), self._sock, self._raw = (self._sock, self._raw), None, None
        close_attach(sock, raw)

    def execute(self, request: RunRequest, *, started_at: float | None = None) -> ExecutionResult:
        if self._used:
            raise SandboxError("this sandbox cell was already used; cells are single-use")
        if not self.alive:
            self.discard()
            # nothing ran: the caller (the pool) may start a fresh cell instead
            raise RunnerProtocolError("the sandbox ended before it was given the program")
        self._used = True
        t0 = started_at if started_at is not None else time.monotonic()
        try:
            if self.gateway is not None:
                self.gateway.start_run()
            result = self._execute(request, t0)
            if self.gateway is not None:  # the proxy's records of this run
                result = dataclasses.replace(result, network=self.gateway.finish())
            return result
        finally:
            self.discard()

    def _execute(
        self, request: RunRequest, t0: float, extra: dict[str, Any] | None = None
    ) -> ExecutionResult:
        limits = request.limits
        code = request.code.encode("utf-8", "surrogateescape")
        stdin = request.stdin or b""
        header = {
            "v": PROTOCOL,
            "code_len": len(code),
            "stdin_len": len(stdin),
            "timeout_s": limits.timeout_s,
            "stdout_cap": limits.stdout_bytes,
            "stderr_cap": limits.stderr_bytes,
            "filename": request.filename,
            "watch_host": True,
            "await_hangup": True,
            **(extra or {}),
        }
        if limits.runtime == "runsc":
            header["memory_budget"] = limits.memory_bytes + limits.swap_bytes
        wheels = b""
        if request.wheels:  # per-run packages follow stdin (see the runner's _install_wheels)
            header["wheels"] = [
                {"filename": w.filename, "sha256": w.sha256, "len": len(w.data)}
                for w in request.wheels
            ]
            wheels = b"".join(w.data for w in request.wheels)
        header.update(_files_header(request))  # input files follow the wheels
        payload = b"".join(f.data for f in request.files)
        assert self._sock is not None
        try:
            self._sock.sendall(
                json.dumps(header).encode() + b"\n" + code + stdin + wheels + payload
            )
        except OSError as exc:
            raise RunnerProtocolError(f"could not hand the program to the sandbox: {exc}") from exc
        deadline = time.monotonic() + limits.timeout_s + HOST_GRACE_S
        frame = self._read_frame(deadline)
        collected = _Collected(request.file_caps)
        live = _Live(request)
        while frame is not None and frame.get("event") in ("output", "file", "files_done"):
            if frame["event"] == "output":
                live.give(frame.get("stream"), self._keep_output(frame, limits))
            else:
                collected.take(frame)
                deadline = max(deadline, time.monotonic() + 30.0)  # collection follows the run
            frame = self._read_frame(deadline)
        live.finish(self._output, limits)
        total = time.monotonic() - t0
        if frame is not None and frame.get("event") == "result":
            self._finished_cleanly = True  # the runner exits by itself; auto_remove deletes it
            return collected.into(self._result_from_frame(frame, limits, total))
        timed_out = time.monotonic() >= deadline  # else the stream ended: the runner died
        return self._result_without_report(limits, total, frame, timed_out=timed_out)

    def _keep_output(self, frame: dict[str, Any], limits: Limits) -> bytes:
        """One streamed chunk; the caps hold here too, whatever the runner sent. Returns the
        part that was kept."""
        stream = frame.get("stream")
        if stream not in self._output:
            return b""
        buffer = self._output[stream]
        cap = limits.stdout_bytes if stream == "stdout" else limits.stderr_bytes
        room = cap - len(buffer)
        if room <= 0:
            return b""
        kept = base64.b64decode(frame.get("data", ""))[:room]
        buffer += kept
        return kept

    def _result_from_frame(
        self, frame: dict[str, Any], limits: Limits, total: float
    ) -> ExecutionResult:
        stdout_raw = bytes(self._output["stdout"])
        stderr_raw = bytes(self._output["stderr"])
        stdout_truncated = frame["stdout_bytes"] > len(stdout_raw)
        stderr_truncated = frame["stderr_bytes"] > len(stderr_raw)
        signal = frame.get("signal")
        # the host's own view of the cgroup's OOM events counts too (the runner may miss one)
        oom_killed = bool(frame["oom_killed"]) or (self._oom is not None and self._oom.fired())
        status = classify(
            exit_code=frame.get("exit_code"),
            signal=signal,
            timed_out=bool(frame["timed_out"]),
            oom_killed=oom_killed,
            truncated=stdout_truncated or stderr_truncated,
        )
        return ExecutionResult(
            status=status,
            exit_code=None if frame["timed_out"] else frame.get("exit_code"),
            signal=signal,
            stdout=_decode_cut(stdout_raw, stdout_truncated),
            stderr=_decode_cut(stderr_raw, stderr_truncated),
            stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated,
            stdout_bytes=int(frame["stdout_bytes"]),
            stderr_bytes=int(frame["stderr_bytes"]),
            timed_out=bool(frame["timed_out"]),
            oom_killed=oom_killed,
            duration_s=float(frame["duration_s"]),
            total_s=round(total, 6),
            cpu_time_s=frame.get("cpu_time_s"),
            peak_memory_bytes=frame.get("peak_memory_bytes"),
            limits=limits,
            runtime=limits.runtime,
            image_id=self.image_id,
            container_id=self.container_id or "",
            accounting=str(frame.get("accounting", "none")),
        )

    def _result_without_report(
        self, limits: Limits, total: float, frame: dict[str, Any] | None, *, timed_out: bool
    ) -> ExecutionResult:
        """The runner did not report: the host deadline passed, or the runner itself died.

        Still honest: the output streamed so far is kept, and the cgroup's own OOM events (read
        by the host, see ``_OomWatch``) say whether the memory limit is what ended it."""
        assert self.container_id is not None
        api = self.backend.client.api
        stats = _host_cgroup_stats(self.container_id)
        oom = self._oom is not None and self._oom.fired(settle_s=0.0 if timed_out else 0.5)
        oom = oom or bool(stats.get("oom_kills"))
        if timed_out:
            with contextlib.suppress(Exception):
                api.kill(self.container_id)
            status, error = (
                Status.TIMEOUT,
                "the program did not end by its deadline; the host killed the sandbox",
            )
        else:
            status = Status.OOM if oom else Status.KILLED
            error = "the sandbox runner ended without reporting" + (
                " (the container's memory limit was hit: the cgroup recorded an OOM kill)"
                if oom
                else ""
            )
            if frame is not None and frame.get("event") == "error":
                error = f"the sandbox runner failed: {frame.get('message')}"
        runner_said = self._stderr.decode("utf-8", "replace").strip()
        if runner_said:
            error += f"; the runner said: {runner_said[-500:]}"
        stdout_raw = bytes(self._output["stdout"])
        stderr_raw = bytes(self._output["stderr"])
        stdout_truncated = len(stdout_raw) >= limits.stdout_bytes > 0 and not timed_out
        stderr_truncated = len(stderr_raw) >= limits.stderr_bytes > 0 and not timed_out
        return ExecutionResult(
            status=status,
            exit_code=None,
            signal=None if timed_out else 9,
            stdout=_decode_cut(stdout_raw, True),
            stderr=_decode_cut(stderr_raw, True),
            stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated,
            stdout_bytes=len(stdout_raw),  # at least this much; the runner's count is lost
            stderr_bytes=len(stderr_raw),
            timed_out=timed_out,
            oom_killed=oom,
            duration_s=round(total, 6),
            total_s=round(total, 6),
            cpu_time_s=stats.get("cpu_s"),
            peak_memory_bytes=stats.get("peak_memory"),
            limits=limits,
            runtime=limits.runtime,
            image_id=self.image_id,
            container_id=self.container_id,
            accounting="host-cgroup" if stats else "none",
            error=error,
        )

    # -- the attach stream ----------------------------------------------------------------

    def _read_frame(self, deadline: float) -> dict[str, Any] | None:
        """Next ``CBR1`` line from the runner's channel, or None at EOF or the deadline."""
        while True:
            nl = self._buffer.find(b"\n")
            if nl >= 0:
                line = bytes(self._buffer[:nl])
                del self._buffer[: nl + 1]
                if line.startswith(CHANNEL_PREFIX):
                    message: dict[str, Any] = json.loads(line[len(CHANNEL_PREFIX) :])
                    return message
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._read_mux(remaining) is None:
                return None

    def _read_mux(self, timeout: float) -> bytes | None:
        """Read one multiplexed frame; stdout goes to the buffer, stderr to diagnostics."""
        header = self._recv_exact(8, timeout)
        if header is None:
            return None
        kind, size = header[0], struct.unpack(">I", header[4:8])[0]
        payload = self._recv_exact(size, max(timeout, 5.0)) if size else b""
        if payload is None:
            return None
        if kind == 1:
            self._buffer += payload
        elif len(self._stderr) < RUNNER_STDERR_CAP:
            self._stderr += payload[: RUNNER_STDERR_CAP - len(self._stderr)]
        return payload

    def _recv_exact(self, n: int, timeout: float) -> bytes | None:
        sock = self._sock
        if sock is None:
            return None
        out = bytearray()
        end = time.monotonic() + timeout
        while len(out) < n:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(n - len(out))
            except TimeoutError:
                return None
            except OSError:
                return None
            if not chunk:
                return None
            out += chunk
        return bytes(out)


def _files_header(request: RunRequest) -> dict[str, Any]:
    """The request header's file fields (inputs follow the program's stdin, in this order)."""
    header: dict[str, Any] = {}
    if request.files:
        header["files"] = [{"name": f.name, "len": len(f.data)} for f in request.files]
    if request.collect:
        header["collect"] = list(request.collect)
        header["collect_max_files"] = request.file_caps.max_files
        header["collect_max_bytes"] = request.file_caps.max_bytes
    return header


class _Collected:
    """Artifacts as they arrive; names checked and caps held again on the host."""

    def __init__(self, caps: FileCaps) -> None:
        self.caps = caps
        self.artifacts: list[Artifact] = []
        self.refused: list[RefusedFile] = []
        self.total = 0

    def take(self, frame: dict[str, Any]) -> None:
        if frame["event"] == "files_done":
            for item in (frame.get("refused") or [])[:200]:
                shown_name, why = str(item.get("name"))[:300], str(item.get("reason"))[:200]
                self.refused.append(RefusedFile(shown_name, why))
            if frame.get("error"):
                self.refused.append(RefusedFile("*", str(frame["error"])[:300]))
            return
        name = str(frame.get("name", ""))
        data = base64.b64decode(frame.get("data", ""))
        reason: str | None = check_name(name)
        if reason is None and len(self.artifacts) >= self.caps.max_files:
            reason = f"more than {self.caps.max_files} files"
        if reason is None and self.total + len(data) > self.caps.max_bytes:
            reason = "over the total size cap for collected files"
        if reason:
            self.refused.append(RefusedFile(shown(name), reason))
            return
        self.total += len(data)
        self.artifacts.append(Artifact.from_bytes(name, data))

    def into(self, result: ExecutionResult) -> ExecutionResult:
        if not self.artifacts and not self.refused:
            return result
        return dataclasses.replace(
            result, artifacts=tuple(self.artifacts), files_refused=tuple(self.refused)
        )


class _Live:
    """Hands each kept output chunk to the request's callbacks as it arrives, decoded
    incrementally so a character split between frames is delivered whole. A callback that
    raises is ignored: the caller's display must not change what the run did or reports."""

    def __init__(self, request: RunRequest) -> None:
        self._callbacks = {"stdout": request.on_stdout, "stderr": request.on_stderr}
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace")
            for name, callback in self._callbacks.items()
            if callback is not None
        }

    def give(self, stream: Any, data: bytes) -> None:
        decoder = self._decoders.get(str(stream))
        if decoder is not None and data:
            self._call(str(stream), decoder.decode(data))

    def finish(self, output: dict[str, bytearray], limits: Limits) -> None:
        """The end of the output: an incomplete last character, unless a cap cut it (the
        result drops that partial tail too)."""
        caps = {"stdout": limits.stdout_bytes, "stderr": limits.stderr_bytes}
        for stream, decoder in self._decoders.items():
            if len(output[stream]) < caps[stream]:
                self._call(stream, decoder.decode(b"", final=True))

    def _call(self, stream: str, text: str) -> None:
        callback = self._callbacks[stream]
        if text and callback is not None:
            with contextlib.suppress(Exception):
                callback(text)


def close_attach(sock: socket.socket | None, raw: Any) -> None:
    """Close an attach stream: the socket under it, then the SDK's wrapper (either may be gone)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
    if raw is not None:
        with contextlib.suppress(Exception):
            raw.close()


def _raw_socket(raw: Any) -> socket.socket:
    sock = getattr(raw, "_sock", raw)
    if not isinstance(sock, socket.socket):
        raise SandboxError("the Docker SDK returned an unexpected attach stream type")
    return sock


def _decode_cut(data: bytes, truncated: bool) -> str:
    """Decode UTF-8; when the cap cut a multi-byte character in half, drop the partial tail."""
    if truncated:
        for cut in range(min(3, len(data)), 0, -1):
            tail = data[-cut:]
            lead = tail[0]
            need = (
                2
                if lead >> 5 == 0b110
                else 3
                if lead >> 4 == 0b1110
                else 4
                if lead >> 3 == 0b11110
                else 0
            )
            if need > cut:
                data = data[:-cut]
                break
    return data.decode("utf-8", "replace")


def _api_error(exc: Any, limits: Limits) -> SandboxError:
    text = str(getattr(exc, "explanation", None) or exc)
    if "runtime" in text.lower() and limits.runtime != "runc":
        return RuntimeUnavailableError(
            f"the engine refused runtime {limits.runtime!r}: {text}; cellblock never falls back"
        )
    return SandboxError(f"the Docker engine refused to create the sandbox: {text}")


def _force_remove(client: Any, container_id: str) -> None:
    import docker.errors

    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc) and "No such container" not in str(exc):
            raise


class _OomWatch:
    """The container cgroup's OOM events, seen from the host, so that a run whose runner was
    itself killed (the program can park memory outside its own processes) still says ``oom``.

    cgroup v1: an eventfd registered on ``memory.oom_control`` through ``cgroup.event_control``
    (needs root on the host; otherwise the counter alone). The kernel signals it on every OOM of
    the cgroup and once more when the cgroup is removed, and the removal signal can only come
    after the directory is gone: a signal read while the directory exists is an OOM, and two or
    more signals always include one. Besides that, ``oom_kill`` in ``memory.oom_control`` (v1)
    or ``memory.events`` (v2) is compared with its value at the start while it can be read.
    """

    _ROOT = Path("/sys/fs/cgroup")

    def __init__(self, container_id: str) -> None:
        self._dir: Path | None = None
        self._counter: Path | None = None
        self._eventfd: int | None = None
        self._signals = 0
        self._seen = False
        for directory, counter in (
            (self._ROOT / "memory" / "docker" / container_id, "memory.oom_control"),
            (
                self._ROOT / "memory" / "system.slice" / f"docker-{container_id}.scope",
                "memory.oom_control",
            ),
            (self._ROOT / "system.slice" / f"docker-{container_id}.scope", "memory.events"),
            (self._ROOT / "docker" / container_id, "memory.events"),
        ):
            if (directory / counter).exists():
                self._dir, self._counter = directory, directory / counter
                break
        self._baseline = self._count() or 0
        if self._counter is not None and self._counter.name == "memory.oom_control":
            self._register()

    def _register(self) -> None:
        assert self._dir is not None and self._counter is not None
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            control = os.open(self._counter, os.O_RDONLY | os.O_CLOEXEC)
            try:
                (self._dir / "cgroup.event_control").write_text(f"{efd} {control}")
            finally:
                os.close(control)
        except OSError:  # not root on the host: the counter alone
            os.close(efd)
            return
        self._eventfd = efd

    def _count(self) -> int | None:
        if self._counter is None:
            return None
        try:
            text = self._counter.read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return None

    def _drain(self) -> None:
        if self._eventfd is None:
            return
        try:
            value = os.eventfd_read(self._eventfd)
        except BlockingIOError:
            return
        self._signals += value
        if self._dir is not None and self._dir.exists():
            self._seen = True  # the cgroup is still there: this signal is not its removal

    def fired(self, *, settle_s: float = 0.0) -> bool:
        """Whether the cgroup hit its memory limit since the watch began."""
        self._drain()
        count = self._count()
        if count is not None and count > self._baseline:
            self._seen = True
        if self._seen or self._signals >= 2:
            return True
        if self._signals == 1 and settle_s > 0 and self._eventfd is not None:
            # the directory is gone and one signal came: its removal, or an OOM whose removal
            # signal is still on its way; that one follows within moments
            with contextlib.suppress(OSError):
                select.select([self._eventfd], [], [], settle_s)
            self._drain()
        return self._seen or self._signals >= 2

    def close(self) -> None:
        efd, self._eventfd = self._eventfd, None
        if efd is not None:
            with contextlib.suppress(OSError):
                os.close(efd)


def _host_cgroup_stats(container_id: str) -> dict[str, Any]:
    """Accounting read from the host's cgroup tree, when the engine is local and it still exists."""
    stats: dict[str, Any] = {}
    root = Path("/sys/fs/cgroup")
    for mem in (root / "memory" / "docker" / container_id,):
        with contextlib.suppress(OSError, ValueError):
            stats["peak_memory"] = int((mem / "memory.max_usage_in_bytes").read_text())
            for line in (mem / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    stats["oom_kills"] = int(line.split()[1])
    for cpu in (
        root / "cpuacct" / "docker" / container_id,
        root / "cpu,cpuacct" / "docker" / container_id,
    ):
        with contextlib.suppress(OSError, ValueError):
            stats["cpu_s"] = int((cpu / "cpuacct.usage").read_text()) / 1e9
            break
    for v2 in (
        root / "system.slice" / f"docker-{container_id}.scope",
        root / "docker" / container_id,
    ):
        with contextlib.suppress(OSError, ValueError):
            stats["peak_memory"] = int((v2 / "memory.peak").read_text())
            for line in (v2 / "memory.events").read_text().splitlines():
                if line.startswith("oom_kill "):
                    stats["oom_kills"] = int(line.split()[1])
            for line in (v2 / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    stats["cpu_s"] = int(line.split()[1]) / 1e6
    return stats


def reap(client: Any, *, include_live: bool = False) -> int:
    """Remove cellblock containers whose owner process is gone. Returns how many were removed."""
    removed = 0
    for c in client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"}):
        labels = c.get("Labels") or {}
        if not include_live and _owner.is_alive(labels):
            continue
        _force_remove(client, c["Id"])
        removed += 1
    from cellblock.network.docker import reap_networks

    reap_networks(client, include_live=include_live)  # cell networks left by a dead owner
    return removed
