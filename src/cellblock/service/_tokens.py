"""A file-backed token store: HMAC-SHA256 hashes under a separate key, 0600 files, atomic writes.

A token reads ``cbt_<id>_<secret>``. The id finds the record in O(1); the secret (256 random bits)
is checked by comparing HMAC-SHA256(key, secret) with the stored value in constant time. The key
lives in its own 0600 file next to the store, so a copy of the token file alone is useless. An
unknown id still costs one HMAC and one comparison, so timing does not tell which ids exist.

Writers take an exclusive ``flock`` on a lock file for the whole read-modify-write and replace
the file atomically (temporary file, fsync, rename, fsync of the directory), so concurrent
``cellblock token`` commands never lose an update and a reader never sees a torn file. A server
re-reads the file when its (inode, size, mtime) changes, so a revocation takes effect at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs

from cellblock.service.interface import (
    AuthenticationError,
    CreatedToken,
    Quotas,
    ServiceInputError,
    TokenInfo,
    TokenNotFoundError,
    TokenStore,
    TokenStoreError,
)

PREFIX = "cbt"
ENV_VAR = "CELLBLOCK_TOKENS"
_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_DUMMY_HASH = "0" * 64


def default_token_file() -> Path:
    """``$CELLBLOCK_TOKENS``, else ``<user config dir>/cellblock/tokens.json``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("cellblock")) / "tokens.json"


def split_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    token_id, secret = parts[1], parts[2]
    if not _ID_RE.match(token_id) or not _SECRET_RE.match(secret):
        return None
    return token_id, secret


class FileTokenStore(TokenStore):
    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_token_file()
        self._key_path = self.path.with_name(self.path.name + ".key")
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._key: bytes | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._mutex = threading.Lock()

    # -- files ---------------------------------------------------------------------------------

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot create the token directory {self.path.parent}: {exc.strerror}"
            ) from exc

    def _hmac_key(self) -> bytes:
        if self._key is not None:
            return self._key
        self._ensure_dir()
        try:
            # O_EXCL: when two first commands race, one creates the key and both read it
            fd = os.open(
                self._key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
        except FileExistsError:
            pass
        except OSError as exc:
            raise TokenStoreError(f"cannot create {self._key_path}: {exc.strerror}") from exc
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32).hex().encode())
                f.flush()
                os.fsync(f.fileno())
        for _ in range(50):  # the creator may still be writing
            try:
                fd = os.open(self._key_path, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as f:
                    raw = f.read().strip()
            except OSError as exc:
                raise TokenStoreError(f"cannot read {self._key_path}: {exc.strerror}") from exc
            if len(raw) == 64:
                self._key = bytes.fromhex(raw.decode())
                return self._key
            time.sleep(0.02)
        raise TokenStoreError(f"the token key {self._key_path} is damaged; restore or remove it")

    def _hash(self, secret: str) -> str:
        return hmac.new(self._hmac_key(), secret.encode(), hashlib.sha256).hexdigest()

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        self._ensure_dir()
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise TokenStoreError(f"cannot open {self._lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TokenStoreError(
                f"cannot read the token file {self.path}: {exc.strerror}"
            ) from exc
        try:
            with os.fdopen(fd, "rb") as f:
                data = json.loads(f.read())
        except (ValueError, OSError) as exc:
            raise TokenStoreError(
                f"the token file {self.path} is not valid JSON; restore it from a backup"
            ) from exc
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, dict):
            raise TokenStoreError(f"the token file {self.path} has no 'tokens' table")
        return tokens

    def _write(self, tokens: dict[str, dict[str, Any]]) -> None:
        body = json.dumps({"version": 1, "tokens": tokens}, indent=2, sort_keys=True).encode()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot write the token file {self.path}: {exc.strerror}"
            ) from exc

    # -- the contract --------------------------------------------------------------------------

    def create(self, name: str, *, policy: str, quotas: Quotas) -> CreatedToken:
        if not _NAME_RE.match(name):
            raise ServiceInputError(
                f"token name {name!r} is not valid; use 1-64 letters, digits, '.', '_', '@' or '-'"
            )
        secret = secrets.token_urlsafe(32)
        token_id = secrets.token_hex(8)
        info = TokenInfo(token_id, name, policy, quotas, round(time.time(), 3))
        with self._write_lock():
            tokens = self._read()
            tokens[token_id] = {**info.to_dict(), "hash": self._hash(secret), "alg": "hmac-sha256"}
            self._write(tokens)
        return CreatedToken(info, f"{PREFIX}_{token_id}_{secret}")

    def list(self) -> list[TokenInfo]:
        return sorted(
            (_info(r) for r in self._read().values()), key=lambda t: (t.created_at, t.token_id)
        )

    def revoke(self, token_id: str) -> TokenInfo:
        with self._write_lock():
            tokens = self._read()
            record = tokens.get(token_id)
            if record is None:
                raise TokenNotFoundError(
                    f"no token has id {token_id!r}; `cellblock token list` shows the ids"
                )
            if record.get("revoked_at") is None:
                record["revoked_at"] = round(time.time(), 3)
                self._write(tokens)
        return _info(record)

    def authenticate(self, secret: str) -> TokenInfo:
        parts = split_token(secret)
        token_id, raw = parts if parts is not None else ("", secret[:64])
        record = self._current().get(token_id)
        expected = record.get("hash", _DUMMY_HASH) if record is not None else _DUMMY_HASH
        # one HMAC and one constant-time comparison whatever is wrong with the token
        ok = hmac.compare_digest(self._hash(raw), str(expected))
        if parts is None or record is None or not ok:
            raise AuthenticationError("the bearer token is not valid")
        info = _info(record)
        if info.revoked:
            raise AuthenticationError("the bearer token has been revoked")
        return info

    def _current(self) -> dict[str, dict[str, Any]]:
        """The tokens, re-read when the file changed (a revocation applies at once)."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            raise TokenStoreError(
                f"cannot read the token file {self.path}: {exc.strerror}"
            ) from exc
        with self._mutex:
            if stamp != self._stamp:
                self._cache = self._read() if stamp is not None else {}
                self._stamp = stamp
            return self._cache


def _info(record: dict[str, Any]) -> TokenInfo:
    return TokenInfo(
        token_id=str(record["id"]),
        name=str(record.get("name", "")),
        policy=str(record["policy"]),
        quotas=Quotas.from_dict(dict(record.get("quotas") or {})),
        created_at=float(record.get("created_at", 0.0)),
        revoked_at=None if record.get("revoked_at") is None else float(record["revoked_at"]),
    )
