"""Egress for sandboxed programs: none by default, or an allowlist through a recording proxy.

The public surface: :class:`Egress` (what an allowlist run may reach), :class:`Connection` (one
recorded attempt), the :class:`Gateway` interface, and the errors under :class:`NetworkError`.
"""

from cellblock.network.interface import (
    DEFAULT_BUDGET_BYTES,
    DEFAULT_PORTS,
    PIP_INDEX,
    Connection,
    Egress,
    Gateway,
    GatewayError,
    InvalidEgressError,
    NetworkError,
    NetworkUnavailableError,
    name_allowed,
)

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "DEFAULT_PORTS",
    "PIP_INDEX",
    "Connection",
    "Egress",
    "Gateway",
    "GatewayError",
    "InvalidEgressError",
    "NetworkError",
    "NetworkUnavailableError",
    "name_allowed",
]
