"""What the host's pip is configured to use: its package index hosts and its CA bundle.

Nothing here names a registry: the hosts come from pip's configuration (``pip config list``,
which covers the config files and ``PIP_*`` variables), and when no index is configured, from the
default that pip itself carries.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cellblock.network.interface import NetworkUnavailableError


@functools.lru_cache(maxsize=1)
def pip_config() -> dict[str, str]:
    """``pip config list`` as ``{key: value}`` (keys such as ``global.index-url``); {} if none."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, raw = line.partition("=")
        if sep:
            values[key.strip()] = raw.strip().strip("'\"")
    return values


def _setting(name: str) -> list[str]:
    """Every configured value of one pip option, environment first (pip's own precedence)."""
    env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
    found = [env] if env else []
    config = pip_config()
    for scope in (":env:", "install", "download", "global"):
        value = config.get(f"{scope}.{name}")
        if value:
            found.append(value)
    return found


def _default_index_hosts() -> tuple[str, ...]:
    try:
        from pip._internal.models.index import PyPI
    except ImportError as exc:
        raise NetworkUnavailableError(
            "cannot tell which package index the host's pip uses (pip is not importable and no "
            "index-url is configured); name the index hosts in the policy's network.allow"
        ) from exc
    hosts = [urlsplit(PyPI.url).hostname or "", PyPI.file_storage_domain]
    return tuple(h for h in hosts if h)


def index_hosts() -> tuple[str, ...]:
    """The host names of the index (and extra indexes) the host's pip uses."""
    urls: list[str] = []
    index = _setting("index-url")
    if index:
        urls.append(index[0])
    for extra in _setting("extra-index-url"):
        urls.extend(extra.split())
    hosts: list[str] = []
    for url in urls:
        host = urlsplit(url).hostname
        if host and host.lower() not in hosts:
            hosts.append(host.lower())
    if not index:
        hosts = [*_default_index_hosts(), *hosts]
    return tuple(dict.fromkeys(hosts))


def ca_bundle_path() -> Path | None:
    """The CA bundle the host's pip trusts: its ``cert`` setting, ``PIP_CERT``,
    ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, else the bundle pip ships (certifi)."""
    candidates = [*_setting("cert")]
    for var in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(var):
            candidates.append(os.environ[var])
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    try:
        from pip._vendor import certifi
    except ImportError:
        return None
    path = Path(certifi.where())
    return path if path.is_file() else None
