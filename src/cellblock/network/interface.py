"""The network contract: an egress allowlist, one connection record, and the ``Gateway`` ABC.

A run with ``network: allowlist`` gets a private network with no route out; its only way out is
a gateway (an egress proxy) that lets through CONNECT and plain HTTP requests to allowlisted
names on allowed ports, and records every attempt. This module has no engine dependency, so the
sandbox's :class:`~cellblock.sandbox.interface.Limits` can carry an :class:`Egress`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cellblock.errors import CellblockError

DEFAULT_PORTS = (443, 80)
DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024
# A symbolic allow entry: the hosts of the package index the host's pip is configured to use
# (its index-url and extra-index-url, or pip's own default), expanded when a run starts.
PIP_INDEX = "$pip-index"
SYMBOLIC_ENTRIES = (PIP_INDEX,)

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class NetworkError(CellblockError):
    """Base of every network error (egress allowlist, proxy, private networks)."""


class InvalidEgressError(NetworkError, ValueError):
    """An allowlist entry, port or budget is not valid. ``field`` names it."""

    exit_code = 64  # EX_USAGE

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid network setting {field!r}: {message}")
        self.field = field


class NetworkUnavailableError(NetworkError):
    """The allowlist mode cannot run here (for example under a runtime without networking)."""


class GatewayError(NetworkError):
    """The egress proxy or its private network could not be created or did not answer."""


def check_allow_entry(entry: str) -> str:
    """A lower-cased allow entry (``name``, ``*.suffix`` or ``$pip-index``), or raise."""
    if not isinstance(entry, str):
        raise InvalidEgressError("allow", f"expected a host name, got {entry!r}")
    value = entry.strip().lower().rstrip(".")
    if value in SYMBOLIC_ENTRIES:
        return value
    name = value[2:] if value.startswith("*.") else value
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise InvalidEgressError(
            "allow", f"{entry!r} is an address; the allowlist takes host names only"
        )
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidEgressError(
            "allow",
            f"{entry!r} is not a host name; use names such as files.example.org, patterns "
            f"such as *.example.org, or {PIP_INDEX}",
        )
    if value.startswith("*.") and len(labels) < 2:
        raise InvalidEgressError(
            "allow", f"{entry!r} is too broad; a pattern needs at least two labels after '*.'"
        )
    return value


def name_allowed(host: str, allow: tuple[str, ...]) -> bool:
    """Whether ``host`` matches an exact entry or a ``*.suffix`` pattern (not the suffix itself)."""
    name = host.lower().rstrip(".")
    for entry in allow:
        if entry.startswith("*."):
            if name.endswith(entry[1:]) and len(name) > len(entry) - 1:
                return True
        elif name == entry:
            return True
    return False


@dataclass(frozen=True)
class Egress:
    """What an allowlist run may reach. Hashable: the warm pool keys cells by it.

    ``allow`` holds names, ``*.suffix`` patterns and ``$pip-index``; :meth:`resolve` expands the
    symbolic entries. ``ca_bundle`` is the host path of the PEM bundle the cell trusts (``None``:
    the image's own); it is copied into the allowlist image, never mounted.
    ``hosts`` pins names to addresses inside the proxy, like /etc/hosts; pinned addresses pass the
    same checks as resolved ones (the tests use it to prove DNS-rebinding protection).
    """

    allow: tuple[str, ...] = ()
    ports: tuple[int, ...] = DEFAULT_PORTS
    budget_bytes: int = DEFAULT_BUDGET_BYTES
    ca_bundle: str | None = None
    hosts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.allow, str) or not isinstance(self.allow, tuple | list):
            raise InvalidEgressError("allow", f"expected a list of host names, got {self.allow!r}")
        object.__setattr__(self, "allow", tuple(check_allow_entry(e) for e in self.allow))
        ports = tuple(self.ports)
        for port in ports:
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise InvalidEgressError(
                    "ports", f"expected ports between 1 and 65535, got {port!r}"
                )
        if not ports:
            raise InvalidEgressError("ports", "expected at least one port")
        object.__setattr__(self, "ports", ports)
        budget = self.budget_bytes
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise InvalidEgressError("budget", f"expected at least 1k bytes, got {budget!r}")
        object.__setattr__(self, "hosts", tuple((str(n).lower(), str(a)) for n, a in self.hosts))
        for _, address in self.hosts:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InvalidEgressError("hosts", f"expected an address, got {address!r}") from None

    def resolve(self, pip_hosts: tuple[str, ...]) -> Egress:
        """A copy whose symbolic entries are replaced by concrete names."""
        out: list[str] = []
        for entry in self.allow:
            for name in pip_hosts if entry == PIP_INDEX else (entry,):
                if name not in out:
                    out.append(name)
        return dataclasses.replace(self, allow=tuple(out))

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow": list(self.allow),
            "ports": list(self.ports),
            "budget_bytes": self.budget_bytes,
            "ca_bundle": self.ca_bundle,
            "hosts": [list(pair) for pair in self.hosts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Egress:
        return cls(
            allow=tuple(data.get("allow", ())),
            ports=tuple(data.get("ports", DEFAULT_PORTS)),
            budget_bytes=int(data.get("budget_bytes", DEFAULT_BUDGET_BYTES)),
            ca_bundle=data.get("ca_bundle"),
            hosts=tuple(tuple(p) for p in data.get("hosts", ())),
        )


@dataclass(frozen=True)
class Connection:
    """One connection attempt through the gateway, allowed or not."""

    host: str
    port: int
    method: str  # CONNECT, GET, ...
    allowed: bool
    reason: str  # "allowed", "name not in allowlist", "port not allowed", "private address", ...
    address: str | None  # the address the proxy connected to (or refused)
    bytes_up: int  # client -> server
    bytes_down: int  # server -> client
    duration_s: float
    started: float  # epoch seconds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Connection:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def summarize(
    connections: list[Connection], *, egress: Egress, budget_exceeded: bool
) -> dict[str, Any]:
    """The result's ``network`` field: what was allowed, what was refused, how much moved."""
    return {
        "mode": "allowlist",
        "allow": list(egress.allow),
        "ports": list(egress.ports),
        "budget_bytes": egress.budget_bytes,
        "budget_exceeded": budget_exceeded,
        "attempts": len(connections),
        "allowed": sum(1 for c in connections if c.allowed),
        "denied": sum(1 for c in connections if not c.allowed),
        "bytes_up": sum(c.bytes_up for c in connections),
        "bytes_down": sum(c.bytes_down for c in connections),
        "connections": [c.to_dict() for c in connections],
    }


class Gateway(ABC):
    """A started egress proxy on a private network, serving exactly one cell."""

    @property
    @abstractmethod
    def network_name(self) -> str:
        """The private network the cell joins."""

    @abstractmethod
    def environment(self) -> dict[str, str]:
        """Environment variables that point the cell's clients at the proxy."""

    @abstractmethod
    def start_run(self) -> None:
        """Tell the proxy the cell's program starts (a pooled proxy then stops its idle clock)."""

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """Stop the proxy, wait for its last records and return the summary. Idempotent."""

    @abstractmethod
    def close(self) -> None:
        """Remove the proxy and the network, whatever happened. Idempotent."""

    def close_later(self) -> None:
        """Like :meth:`close`, possibly in the background (the default closes at once)."""
        self.close()
