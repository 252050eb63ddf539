"""Default locations: the audit directory and the signing key."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def default_audit_dir() -> Path:
    """``$CELLBLOCK_AUDIT_DIR``, else ``<user data dir>/cellblock/audit``."""
    env = os.environ.get("CELLBLOCK_AUDIT_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("cellblock")) / "audit"


def default_key_dir() -> Path:
    """``$CELLBLOCK_AUDIT_KEY_DIR``, else ``<user config dir>/cellblock/keys``.

    Deliberately not under the audit directory, and never mounted into a sandbox.
    """
    env = os.environ.get("CELLBLOCK_AUDIT_KEY_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("cellblock")) / "keys"


def default_private_key() -> Path:
    return default_key_dir() / "audit-signing.key"


def default_public_key() -> Path:
    return default_key_dir() / "audit-signing.pub"
