"""The service contract: identities, quotas, the token store, errors, and extension points.

The HTTP API (``cellblock serve``) and the MCP server (``cellblock mcp``) are thin transports over
:class:`~cellblock.pipeline.Pipeline`: the pipeline stays the one place where decisions are made
and recorded. This module holds what both share. Later subsystems (sessions, files) add their
tools and routes by calling :func:`register_extension`, not by editing the servers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellblock.errors import CellblockError

KIB = 1024
MIB = 1024 * KIB


class ServiceError(CellblockError):
    """Base of every error the service layer (tokens, quotas, servers) raises."""


class ServiceInputError(ServiceError):
    """A command or request was malformed (bad quota, unknown token id...)."""

    exit_code = 64  # EX_USAGE


class TokenStoreError(ServiceError):
    """The token file cannot be read or written safely."""

    exit_code = 74  # EX_IOERR


class TokenNotFoundError(ServiceInputError):
    """No token has that id."""


class AuthenticationError(ServiceError):
    """A bearer token is missing, malformed, unknown or revoked (HTTP 401)."""


class QuotaExceededError(ServiceError):
    """A caller is over one of its token's quotas (HTTP 429)."""

    def __init__(self, message: str, *, retry_after_s: int, quota: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.quota = quota


class ShuttingDownError(ServiceError):
    """The server is draining and accepts no new runs (HTTP 503)."""


class RequestFieldError(ServiceInputError):
    """One field of a run request is wrong (HTTP 422 naming ``field``; an MCP tool error).

    ``kind`` says what, for a program: ``too_many``, ``too_long``, ``unknown_package``,
    ``no_such_version``, ``sdist_only``, ``index_unreachable``, ``unknown_image``,
    ``image_not_permitted``...
    """

    def __init__(self, message: str, *, field: str, kind: str) -> None:
        super().__init__(message)
        self.field = field
        self.kind = kind


class PackagesRefusedError(ServiceError):
    """The policy refuses the requested packages; nothing ran (HTTP 403; an MCP tool error).

    ``kind`` is ``denied``, ``size_limit``, ``vulnerable`` or ``scan_unavailable``;
    ``findings`` are the verdict's (kind, action, message) and ``distributions`` what the
    requirements resolved to (empty when refused by name, before any download).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        packages: list[str],
        findings: list[dict[str, Any]],
        distributions: list[dict[str, Any]],
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.packages = packages
        self.findings = findings
        self.distributions = distributions

    def details(self) -> dict[str, Any]:
        return {
            "field": "packages",
            "kind": self.kind,
            "packages": self.packages,
            "findings": self.findings,
            "distributions": self.distributions,
        }


class ImageUnavailableError(ServiceError):
    """The image profile is known and permitted but not built on the engine (HTTP 503).

    The service never builds an image for a request (minutes of work a caller could trigger).
    """


@dataclass(frozen=True)
class Quotas:
    """What one token may use. Every field is a positive bound."""

    max_concurrent: int = 2
    runs_per_minute: int = 60
    max_request_bytes: int = 1 * MIB
    max_output_bytes: int = 1 * MIB

    def __post_init__(self) -> None:
        for name in ("max_concurrent", "runs_per_minute", "max_request_bytes", "max_output_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServiceInputError(f"quota {name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, int]:
        return {
            "max_concurrent": self.max_concurrent,
            "runs_per_minute": self.runs_per_minute,
            "max_request_bytes": self.max_request_bytes,
            "max_output_bytes": self.max_output_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quotas:
        return cls(**{k: data[k] for k in cls().to_dict() if k in data})


@dataclass(frozen=True)
class TokenInfo:
    """What the store knows about a token, without its secret (only a keyed hash is stored)."""

    token_id: str
    name: str
    policy: str
    quotas: Quotas
    created_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.token_id,
            "name": self.name,
            "policy": self.policy,
            "quotas": self.quotas.to_dict(),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True)
class Identity:
    """Who is calling: what goes into every audit record of the caller's runs (never a secret)."""

    subject: str  # "token:<id>" or "local:<user>"
    via: str  # "http", "mcp-http", "mcp-stdio"
    policy: str
    quotas: Quotas = field(default_factory=Quotas)
    token_id: str | None = None
    name: str = ""

    def to_audit(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "token_id": self.token_id,
            "name": self.name,
            "via": self.via,
        }


@dataclass(frozen=True)
class CreatedToken:
    """A new token: the secret is shown once and never stored."""

    info: TokenInfo
    secret: str


class TokenStore(ABC):
    """Tokens stored as keyed hashes; each bound to a policy and quotas."""

    @abstractmethod
    def create(self, name: str, *, policy: str, quotas: Quotas) -> CreatedToken: ...

    @abstractmethod
    def list(self) -> list[TokenInfo]: ...

    @abstractmethod
    def revoke(self, token_id: str) -> TokenInfo: ...

    @abstractmethod
    def authenticate(self, secret: str) -> TokenInfo:
        """The token a secret belongs to; :class:`AuthenticationError` unless valid and live."""


# -- extension points ------------------------------------------------------------------------

# An extension receives the server object (a FastAPI app or an MCP server) and the shared
# ServiceCore, and registers its own routes or tools on it.
HttpExtension = Callable[[Any, Any], None]
McpExtension = Callable[[Any, Any], None]


@dataclass(frozen=True)
class Extension:
    name: str
    http: HttpExtension | None = None
    mcp: McpExtension | None = None


_extensions: dict[str, Extension] = {}


def register_extension(extension: Extension) -> None:
    """Add routes/tools (for example the session tools) to every server built after this call."""
    _extensions[extension.name] = extension


def extensions() -> list[Extension]:
    return list(_extensions.values())
