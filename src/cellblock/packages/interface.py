"""The packages interface: what a resolution, a scan and a verdict are.

Resolution and download happen on the host, never in a sandbox: :class:`Resolver` turns
requirement specifiers into hash-checked wheels for a :class:`Target` (the sandbox image's
Python and platform) in a content-addressed cache. :class:`VulnerabilityScanner` looks every
resolved distribution up in a vulnerability service. :func:`cellblock.packages.check` applies a
policy's ``packages:`` rules to both and returns a :class:`PackageVerdict`.
"""

from __future__ import annotations

import platform
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Action = Literal["allow", "warn", "review", "block"]
ACTION_ORDER: tuple[Action, ...] = ("allow", "warn", "review", "block")


def _machine() -> str:
    # the image is built for the engine's architecture, which is the host's here
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


@dataclass(frozen=True)
class Target:
    """The interpreter wheels must fit: the sandbox image's Python, ABI and platform."""

    python_version: tuple[int, int] = (3, 11)
    glibc: tuple[int, int] = (2, 36)  # Debian bookworm
    machine: str = field(default_factory=_machine)
    implementation: str = "cp"

    @property
    def abi(self) -> str:
        return f"{self.implementation}{self.python_version[0]}{self.python_version[1]}"

    def platforms(self) -> tuple[str, ...]:
        """Every manylinux tag the image's glibc accepts, newest first (pip does not expand
        ``manylinux_2_X`` to older ones by itself)."""
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{self.machine}" for m, name in legacy.items() if m <= minor]
        return tuple(tags)

    def pip_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--implementation", self.implementation]
        args += ["--python-version", "{}.{}".format(*self.python_version), "--abi", self.abi]
        for tag in self.platforms():
            args += ["--platform", tag]
        return args

    def describe(self) -> str:
        return (
            f"CPython {self.python_version[0]}.{self.python_version[1]} on "
            f"{self.machine} glibc {self.glibc[0]}.{self.glibc[1]}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "python_version": "{}.{}".format(*self.python_version),
            "abi": self.abi,
            "glibc": "{}.{}".format(*self.glibc),
            "machine": self.machine,
        }


@dataclass(frozen=True)
class Distribution:
    """One resolved wheel, stored in the cache under its sha256."""

    name: str  # canonical (PEP 503) name
    version: str
    filename: str
    sha256: str
    size: int
    path: Path
    requested: bool  # named by the caller (False: pulled in as a dependency)

    @property
    def pure(self) -> bool:
        return self.filename.endswith("-none-any.whl")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "requested": self.requested,
        }


@dataclass(frozen=True)
class Resolution:
    """What a set of requirements resolved to."""

    requirements: tuple[str, ...]
    distributions: tuple[Distribution, ...]
    target: Target
    source: str  # "index" or "wheelhouse <dir>"
    cached: bool = False  # every file came from the cache

    @property
    def total_bytes(self) -> int:
        return sum(d.size for d in self.distributions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirements": list(self.requirements),
            "distributions": [d.to_dict() for d in self.distributions],
            "total_bytes": self.total_bytes,
            "target": self.target.to_dict(),
            "source": self.source,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class Vulnerability:
    id: str
    name: str
    version: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "fix_versions": list(self.fix_versions),
            "summary": self.summary,
        }


@dataclass(frozen=True)
class ScanReport:
    """The vulnerability scan of a resolution.

    ``unscanned`` lists ``name==version`` the service could not answer for; ``reachable`` is
    False when the service could not be reached at all (then every distribution is unscanned).
    """

    service: str
    reachable: bool
    vulnerabilities: tuple[Vulnerability, ...] = ()
    unscanned: tuple[str, ...] = ()
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.reachable and not self.unscanned

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "reachable": self.reachable,
            "complete": self.complete,
            "vulnerabilities": [v.to_dict() for v in self.vulnerabilities],
            "unscanned": list(self.unscanned),
            "error": self.error,
        }


@dataclass(frozen=True)
class Finding:
    """One reason the policy gave for its package verdict."""

    kind: Literal["vulnerability", "unscanned", "typosquat", "warning"]
    action: Action
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "action": self.action, "message": self.message}


@dataclass(frozen=True)
class PackageVerdict:
    """The policy's answer for a resolution: the strictest action of its findings."""

    action: Action
    resolution: Resolution
    scan: ScanReport | None
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resolution": self.resolution.to_dict(),
            "scan": None if self.scan is None else self.scan.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class PackageRules:
    """A policy's ``packages:`` rules, in machine units.

    ``allow`` and ``deny`` hold names or globs (``types-*``), compared after PEP 503
    normalisation; a non-empty ``allow`` admits only matching names, and ``deny`` always wins.
    The three actions say what a known vulnerability, an unreachable or silent scan service,
    and a name that looks like a typo of a popular package mean.
    """

    allowed: bool = False
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    max_download_bytes: int = 256 * 1024 * 1024
    vulnerabilities: Action = "block"
    scan_unavailable: Action = "block"
    typosquat: Action = "review"


class Resolver(ABC):
    """Resolves requirement specifiers to cached, hash-checked wheels for a target."""

    @abstractmethod
    def resolve(self, requirements: Sequence[str]) -> Resolution:
        """Resolve and fetch; raise a :class:`~cellblock.packages.errors.PackageError`."""


class VulnerabilityScanner(ABC):
    """Looks distributions up in a vulnerability service. Never raises for an outage: the
    report says the service was unreachable, and the policy decides."""

    @abstractmethod
    def scan(self, distributions: Sequence[Distribution]) -> ScanReport: ...
