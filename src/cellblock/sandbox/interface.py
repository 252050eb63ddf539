"""The sandbox contract: limits, requests, results, and the ``Backend`` every engine implements.

A backend turns a :class:`RunRequest` into an :class:`ExecutionResult` in a fresh, hardened,
single-use environment. Docker is the first implementation; Podman or Kubernetes can implement
the same two classes. A backend may *prepare* a cell ahead of time (the warm pool does); a cell
is used for exactly one request and then destroyed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cellblock.network.interface import Egress
from cellblock.sandbox.errors import InvalidLimitsError
from cellblock.sandbox.files import Artifact, FileCaps, InputFile, RefusedFile

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

RUNTIMES = ("runc", "runsc")
NETWORK_MODES = ("none", "allowlist")
SECCOMP_PROFILES = ("cellblock", "docker-default")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1024 * GIB}


def parse_size(value: str | int, *, field_name: str = "size") -> int:
    """Parse ``"256m"``, ``"1GiB"``, ``"512k"`` or a plain byte count into bytes (binary units)."""
    if isinstance(value, bool):
        raise InvalidLimitsError(field_name, f"expected a size such as 256m, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(value)
    if not match:
        raise InvalidLimitsError(field_name, f"expected a size such as 256m or 1g, got {value!r}")
    number, unit, _ = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


@dataclass(frozen=True)
class Limits:
    """Every resource bound of one run, validated on construction.

    Memory and swap: ``swap_bytes`` is swap *in addition to* memory; the default 0 means the
    engine's memory+swap limit equals the memory limit, so the program cannot page out.
    """

    timeout_s: float = 10.0
    cpus: float = 1.0
    memory_bytes: int = 256 * MIB
    swap_bytes: int = 0
    pids: int = 64
    nofile: int = 256
    tmpfs_bytes: int = 64 * MIB
    tmp_bytes: int = 16 * MIB
    stdout_bytes: int = 1 * MIB
    stderr_bytes: int = 1 * MIB
    max_code_bytes: int = 4 * MIB
    runtime: str = "runc"
    network: str = "none"  # or "allowlist": only through the egress proxy, to ``egress``
    egress: Egress | None = None  # what an allowlist run may reach; None unless allowlist
    # Hardening flags. Strict by default; loosening one is a policy choice the pipeline records.
    read_only_root: bool = True
    no_new_privileges: bool = True
    seccomp: str = "cellblock"  # or "docker-default"

    def __post_init__(self) -> None:
        def number(name: str, lo: float, hi: float, *, integer: bool) -> None:
            value = getattr(self, name)
            ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
            if isinstance(value, bool) or not ok_type:
                kind = "an integer" if integer else "a number"
                raise InvalidLimitsError(name, f"expected {kind}, got {value!r}")
            if not math.isfinite(value) or not lo <= value <= hi:
                raise InvalidLimitsError(name, f"must be between {lo:g} and {hi:g}, got {value!r}")

        number("timeout_s", 0.1, 24 * 3600, integer=False)
        number("cpus", 0.01, 1024, integer=False)
        number("memory_bytes", 16 * MIB, 1024 * GIB, integer=True)
        number("swap_bytes", 0, 1024 * GIB, integer=True)
        number("pids", 8, 1_000_000, integer=True)
        number("nofile", 16, 1_048_576, integer=True)
        number("tmpfs_bytes", 1 * MIB, 1024 * GIB, integer=True)
        number("tmp_bytes", 1 * MIB, 1024 * GIB, integer=True)
        number("stdout_bytes", 0, 1 * GIB, integer=True)
        number("stderr_bytes", 0, 1 * GIB, integer=True)
        number("max_code_bytes", 1, 256 * MIB, integer=True)
        if self.runtime not in RUNTIMES:
            raise InvalidLimitsError(
                "runtime",
                f"unknown runtime {self.runtime!r}; expected one of {', '.join(RUNTIMES)}",
            )
        for flag in ("read_only_root", "no_new_privileges"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidLimitsError(
                    flag, f"expected true or false, got {getattr(self, flag)!r}"
                )
        if self.seccomp not in SECCOMP_PROFILES:
            raise InvalidLimitsError(
                "seccomp",
                f"unknown seccomp profile {self.seccomp!r}; expected one of "
                f"{', '.join(SECCOMP_PROFILES)}",
            )
        if self.network not in NETWORK_MODES:
            raise InvalidLimitsError(
                "network",
                f"unsupported network mode {self.network!r}; expected one of "
                f"{', '.join(NETWORK_MODES)}",
            )
        if (self.network == "allowlist") != isinstance(self.egress, Egress):
            raise InvalidLimitsError(
                "egress",
                "network 'allowlist' needs an Egress (what may be reached) and 'none' takes none",
            )
        if self.network == "allowlist" and self.runtime == "runsc":
            raise InvalidLimitsError(
                "network",
                "network 'allowlist' cannot run under gVisor (runsc), which this engine registers "
                "without networking; use runtime 'runc' (or 'auto') for allowlist profiles",
            )

    def replace(self, **changes: Any) -> Limits:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def tighten(self, other: Limits) -> Limits:
        """The stricter of two limit sets, field by field (runsc is stricter than runc)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "runtime":
                values[f.name] = "runsc" if "runsc" in (mine, theirs) else mine
            elif f.name == "network":
                values[f.name] = "none" if "none" in (mine, theirs) else mine
            elif f.name == "egress":
                values[f.name] = None if "none" in (self.network, other.network) else mine
            elif f.name in ("read_only_root", "no_new_privileges"):
                values[f.name] = mine or theirs
            elif f.name == "seccomp":
                values[f.name] = "cellblock" if "cellblock" in (mine, theirs) else mine
            else:
                values[f.name] = min(mine, theirs)
        return Limits(**values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["egress"] = None if self.egress is None else self.egress.to_dict()
        return data

    def loosenings(self) -> list[str]:
        """Hardening flags that differ from the strict defaults."""
        strict = Limits()
        return [
            name
            for name in ("read_only_root", "no_new_privileges", "seccomp", "network")
            if getattr(self, name) != getattr(strict, name)
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidLimitsError(unknown[0], f"unknown limit; expected one of {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("egress"), Mapping):
            values["egress"] = Egress.from_dict(values["egress"])
        return cls(**values)


class Status(StrEnum):
    """What happened, in one word. Precedence: timeout > oom > killed > error > output_truncated."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    KILLED = "killed"
    OUTPUT_TRUNCATED = "output_truncated"


@dataclass(frozen=True)
class WheelPayload:
    """A pure-Python wheel sent to the sandbox with the program (per-run packages). The runner
    checks its sha256 and unpacks it into a read-only directory on a tmpfs, on ``sys.path``."""

    filename: str
    sha256: str
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if "/" in self.filename or not self.filename.endswith("-none-any.whl"):
            raise InvalidLimitsError(
                "wheels", f"must be pure-Python wheel file names, got {self.filename!r}"
            )


OutputCallback = Callable[[str], None]
"""Receives a program's output as it is produced: text chunks (UTF-8, undecodable bytes as
U+FFFD, a character split between chunks delivered whole), within the output caps. Called on the
thread that called ``run``; an exception it raises is ignored and the run goes on."""


@dataclass(frozen=True)
class RunRequest:
    """One program to run: its source, optional stdin bytes, and the limits to run it under."""

    code: str
    limits: Limits = field(default_factory=Limits)
    stdin: bytes | None = None
    filename: str = "main.py"
    wheels: tuple[WheelPayload, ...] = ()
    files: tuple[InputFile, ...] = ()  # placed in the working directory before the program runs
    collect: tuple[str, ...] = ()  # glob patterns (relative paths; * matches /) to bring back
    file_caps: FileCaps = field(default_factory=FileCaps)
    # live output, as it is produced (never serialised; the result still holds all of it)
    on_stdout: OutputCallback | None = field(default=None, compare=False, repr=False)
    on_stderr: OutputCallback | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        size = len(self.code.encode("utf-8", "surrogatepass"))
        if size > self.limits.max_code_bytes:
            raise InvalidLimitsError(
                "max_code_bytes",
                f"the program is {size} bytes, above the limit of {self.limits.max_code_bytes}",
            )
        if "/" in self.filename or self.filename in ("", ".", ".."):
            raise InvalidLimitsError(
                "filename", f"must be a plain file name, got {self.filename!r}"
            )


@dataclass(frozen=True)
class ExecutionResult:
    """Exactly what happened to one run. Serialises to one JSON object (``to_dict``)."""

    status: Status
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_bytes: int  # bytes the program wrote, including any that were cut
    stderr_bytes: int
    timed_out: bool
    oom_killed: bool
    duration_s: float  # wall time of the program itself, inside the sandbox
    total_s: float  # wall time of the whole run as the caller saw it, setup and teardown included
    cpu_time_s: float | None
    peak_memory_bytes: int | None
    limits: Limits
    runtime: str
    image_id: str
    container_id: str
    backend: str = "docker"
    pooled: bool = False
    # where cpu/memory figures came from: cgroup-v1/-v2 (inside), rusage, gvisor-meminfo (the
    # runner's sampling under gVisor), host-cgroup (the runner died; the host read them) or none
    accounting: str = "cgroup"
    error: str | None = None  # set when the sandbox itself failed to report
    # allowlist runs: what the egress proxy saw (mode, allow, attempts, allowed, denied, bytes,
    # budget_exceeded, connections: one record per attempt); None without network
    network: dict[str, Any] | None = None
    artifacts: tuple[Artifact, ...] = ()  # files collected after the run (``collect=``)
    files_refused: tuple[RefusedFile, ...] = ()  # matched but not handed back, with the reason

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("artifacts", "files_refused")
        }
        data["status"] = self.status.value
        data["limits"] = self.limits.to_dict()
        data["artifacts"] = [a.to_dict() for a in self.artifacts]
        data["files_refused"] = [r.to_dict() for r in self.files_refused]
        return data

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionResult:
        values = dict(data)
        values["status"] = Status(values["status"])
        values["limits"] = Limits.from_dict(values["limits"])
        values["artifacts"] = tuple(Artifact.from_dict(a) for a in values.get("artifacts") or ())
        values["files_refused"] = tuple(
            RefusedFile(str(r["name"]), str(r["reason"])) for r in values.get("files_refused") or ()
        )
        return cls(**values)


def classify(
    *,
    exit_code: int | None,
    signal: int | None,
    timed_out: bool,
    oom_killed: bool,
    truncated: bool,
) -> Status:
    """Map raw facts to one :class:`Status`, most severe first."""
    if timed_out:
        return Status.TIMEOUT
    if oom_killed:
        return Status.OOM
    if signal is not None:
        return Status.KILLED
    if exit_code != 0:
        return Status.ERROR
    if truncated:
        return Status.OUTPUT_TRUNCATED
    return Status.OK


class Cell(ABC):
    """A prepared, hardened, single-use sandbox waiting for exactly one program."""

    limits: Limits

    @abstractmethod
    def execute(self, request: RunRequest, *, started_at: float | None = None) -> ExecutionResult:
        """Run one program and destroy the cell, whatever happens.

        ``started_at`` (``time.monotonic()``) is when the caller's clock for ``total_s`` began.
        """

    @abstractmethod
    def discard(self) -> None:
        """Destroy the cell without running anything. Idempotent."""

    @property
    @abstractmethod
    def alive(self) -> bool:
        """Whether the cell can still take a program."""


class Backend(ABC):
    """A container engine that can prepare cells. Implementations must be thread-safe."""

    name: str

    @abstractmethod
    def prepare(self, limits: Limits, *, idle_s: float = 0.0) -> Cell:
        """Create and start a fresh cell for ``limits``; raise a ``SandboxError`` if impossible.

        With ``idle_s > 0`` the cell ends by itself if no program arrives within that time.
        """

    def run(self, request: RunRequest) -> ExecutionResult:
        """Cold path: prepare a cell and run one program in it."""
        started = time.monotonic()
        return self.prepare(request.limits).execute(request, started_at=started)

    @abstractmethod
    def runtimes(self) -> frozenset[str]:
        """The runtimes this engine offers (``runc``, ``runsc``, ...)."""

    @abstractmethod
    def reap(self) -> int:
        """Remove cells whose owner process is gone; return how many were removed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine connections."""
