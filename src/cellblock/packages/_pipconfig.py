"""The host's pip configuration: which index pip uses and which certificates it trusts.

cellblock never names an index itself. It asks pip (``pip config list``, which merges
/etc/pip.conf, the user's and the site's files and ``PIP_*`` variables) and, when nothing is
configured, pip's own built-in default.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class HostPip:
    index_url: str
    cert: str | None
    configured: bool  # False: pip's built-in default index

    @property
    def json_api_base(self) -> str:
        """Where a PyPI-style JSON API (``/pypi/<name>/json``) would live on this index."""
        parts = urlsplit(self.index_url)
        path = parts.path.rstrip("/")
        if path.endswith("/simple"):
            path = path[: -len("/simple")]
        return urlunsplit((parts.scheme, parts.netloc, path, "", "")).rstrip("/")

    def describe(self) -> str:
        parts = urlsplit(self.index_url)
        return f"{parts.scheme}://{parts.hostname}" + ("" if self.configured else ", pip's default")


def pip_command() -> list[str]:
    return [sys.executable, "-m", "pip"]


def pip_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a pip child: the caller's, without pip's self-update check."""
    out = dict(os.environ if env is None else env)
    out.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    out.setdefault("PIP_NO_INPUT", "1")
    return out


def config_key(env: Mapping[str, str] | None = None) -> str:
    """What identifies pip's configuration cheaply (without running pip): its config files'
    identities and the PIP_* variables. Used to key caches; a TTL bounds what it misses."""
    environ = pip_env(env)
    parts = sorted(f"{k}={v}" for k, v in environ.items() if k.startswith("PIP_"))
    for path in ("/etc/pip.conf", os.path.expanduser("~/.config/pip/pip.conf"),
                 os.path.expanduser("~/.pip/pip.conf"), environ.get("PIP_CONFIG_FILE", "")):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        parts.append(f"{path}:{st.st_mtime_ns if st else '-'}")
    return "\n".join(parts)


def _default_index() -> str:
    try:
        from pip._internal.models.index import PyPI

        return str(PyPI.simple_url)
    except Exception:  # pip internals moved: ask pip's help text is not worth it
        return ""


def host_pip(env: Mapping[str, str] | None = None) -> HostPip:
    """Read the effective ``index-url`` and ``cert`` the host's pip would use."""
    environ = pip_env(env)
    values: dict[str, str] = {}
    try:
        proc = subprocess.run(
            [*pip_command(), "config", "list"],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
            check=False,
        )
        lines = proc.stdout.splitlines() if proc.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        lines = []
    for line in lines:  # later sources override earlier ones, as in pip
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        option = key.rsplit(".", 1)[-1]
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        values[option.replace("_", "-")] = str(value)
    # pip also reads PIP_INDEX_URL / PIP_CERT directly (`config list` shows them as :env:)
    for option in ("index-url", "cert"):
        env_value = environ.get("PIP_" + option.upper().replace("-", "_"))
        if env_value:
            values[option] = env_value
    index = values.get("index-url", "").split()[0] if values.get("index-url") else ""
    configured = bool(index)
    return HostPip(
        index_url=index or _default_index(),
        cert=values.get("cert") or None,
        configured=configured,
    )
