"""The agent-facing service: the HTTP API (``cellblock serve``) and MCP server (``cellblock mcp``).

Both are thin transports over :class:`~cellblock.pipeline.Pipeline`. Tokens (``cellblock token``)
carry the caller's identity, policy and quotas; see docs/service.md. Servers need the
``service`` extra (FastAPI, uvicorn, prometheus_client, mcp); the token store does not.
"""

from __future__ import annotations

from cellblock.service._tokens import FileTokenStore, default_token_file
from cellblock.service.interface import (
    AuthenticationError,
    CreatedToken,
    Extension,
    Identity,
    QuotaExceededError,
    Quotas,
    ServiceError,
    ServiceInputError,
    ShuttingDownError,
    TokenInfo,
    TokenNotFoundError,
    TokenStore,
    TokenStoreError,
    register_extension,
)

__all__ = [
    "AuthenticationError",
    "CreatedToken",
    "Extension",
    "FileTokenStore",
    "Identity",
    "QuotaExceededError",
    "Quotas",
    "ServiceError",
    "ServiceInputError",
    "ShuttingDownError",
    "TokenInfo",
    "TokenNotFoundError",
    "TokenStore",
    "TokenStoreError",
    "default_token_file",
    "register_extension",
]
