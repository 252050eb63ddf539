"""Ed25519 keys: generation with safe file modes, loading, key ids, signing, destruction."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cellblock.audit._errors import AuditKeyError
from cellblock.audit._format import SIG_ALG, signed_message

KEY_ID_PREFIX = "ed25519:"

TrustRoot = Ed25519PublicKey | Path | str | bytes


def key_id(public: Ed25519PublicKey) -> str:
    """``ed25519:`` + SHA-256 of the raw 32-byte public key: the fingerprint operators pin."""
    return KEY_ID_PREFIX + hashlib.sha256(raw_public(public)).hexdigest()


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_from_hex(hexstr: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hexstr))
    except ValueError as exc:
        raise AuditKeyError(f"not an Ed25519 public key: {exc}") from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite a key; the mode is set at creation so there is no readable window.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise AuditKeyError(f"{path} already exists; refusing to overwrite a key") from None
    try:
        os.fchmod(fd, mode)  # umask may have stripped bits we want, never added any
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Create an Ed25519 key pair; the private file is 0600. Returns the key id."""
    private_path, public_path = Path(private_path), Path(public_path)
    if public_path.exists():
        raise AuditKeyError(f"{public_path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, pem, 0o600)
    _write_new(public_path, pub, 0o644)
    return key_id(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    """Load a private key, refusing one that group or others can read."""
    path = Path(path)
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"cannot read signing key {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(
            f"signing key {path} is readable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):o}); run chmod 600 on it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise AuditKeyError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path} is not an Ed25519 public key")
    return key


def trusted_key_id(trust_root: TrustRoot) -> str:
    """Resolve a trust root (public key, key file, key id string, raw bytes) to a key id."""
    if isinstance(trust_root, Ed25519PublicKey):
        return key_id(trust_root)
    if isinstance(trust_root, bytes):
        return key_id(Ed25519PublicKey.from_public_bytes(trust_root))
    if isinstance(trust_root, str) and trust_root.startswith(KEY_ID_PREFIX):
        digest = trust_root[len(KEY_ID_PREFIX) :].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AuditKeyError(f"malformed key fingerprint {trust_root!r}")
        return KEY_ID_PREFIX + digest
    return key_id(load_public(Path(trust_root)))


def sign_payload(key: Ed25519PrivateKey, payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` with ``alg`` and ``sig`` (hex) over its canonical bytes."""
    out = dict(payload)
    out["alg"] = SIG_ALG
    out.pop("sig", None)
    out["sig"] = key.sign(signed_message(out)).hex()
    return out


def check_signature(public: Ed25519PublicKey, payload: Mapping[str, Any]) -> str | None:
    """None when ``payload`` carries a valid Ed25519 signature by ``public``, else why not."""
    alg = payload.get("alg")
    if alg != SIG_ALG:
        return f"signature algorithm is {alg!r}, only {SIG_ALG!r} is accepted (downgrade?)"
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return "signature is missing (stripped?)"
    if len(sig) != 128 or sig != sig.lower():
        return "signature is not 128 lowercase hex digits"  # one encoding only: no malleability
    try:
        public.verify(bytes.fromhex(sig), signed_message(payload))
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None


def destroy_key_file(path: Path) -> None:
    """Overwrite a private key file with zeros, fsync, and unlink it.

    On copy-on-write or journaling storage the old blocks may survive; the real protection is that
    the new key announced under the old one makes any later old-key signature detectable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.write(fd, b"\0" * size)
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
    except OSError as exc:
        raise AuditKeyError(f"could not destroy old signing key {path}: {exc.strerror}") from None
