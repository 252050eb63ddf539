"""A content-addressed wheel cache: ``<root>/sha256/<2 hex>/<64 hex>/<wheel file name>``.

A file is found by its sha256 and checked against it on every read; one that does not match
(a corrupted or tampered cache) is evicted, so the caller fetches it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import platformdirs

CACHE_ENV = "CELLBLOCK_PACKAGE_CACHE"
_CHUNK = 1 << 20


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("cellblock")) / "wheels"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class WheelCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()

    def _dir(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str, filename: str) -> Path | None:
        """The cached file with this hash, verified; ``None`` when absent or evicted."""
        path = self._dir(sha256) / filename
        if not path.is_file():
            return None
        if sha256_file(path) != sha256:
            shutil.rmtree(self._dir(sha256), ignore_errors=True)
            return None
        return path

    def put(self, source: Path, sha256: str) -> Path:
        """Copy ``source`` in under ``sha256`` (already verified by the caller); atomic."""
        final = self._dir(sha256) / source.name
        if final.is_file():
            return final
        final.parent.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".in-", dir=final.parent.parent))
        try:
            shutil.copyfile(source, tmp / source.name)
            os.chmod(tmp / source.name, 0o444)
            try:
                os.rename(tmp, final.parent)
            except OSError:  # a concurrent put won: theirs is the same bytes
                if not final.is_file():
                    raise
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
        return final
