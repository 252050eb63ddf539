"""Ed25519 keys: generation with safe file modes, loading, key ids, signing, destruction."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cellblock.audit._errors import AuditKeyError
from cellblock.audit._format import SIG_ALG, signed_message
from cellblock.audit._fsutil import fsync_dir

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


def _key_pems(key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _publish(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` holding ``data`` atomically; False (and nothing written) if it exists.

    The bytes go to a private temporary file first (mode set at creation, so there is no readable
    window) and are then hard-linked into place: ``link`` fails with EEXIST instead of replacing,
    and a reader never sees a partly written key. This is what lets racing first uses agree.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # umask may have stripped bits we want, never added any
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path, follow_symlinks=False)
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _publish_or_explain(path: Path, data: bytes, mode: int) -> bool:
    try:
        return _publish(path, data, mode)
    except OSError as exc:
        raise AuditKeyError(f"cannot create key file {path}: {exc.strerror}") from None


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Create an Ed25519 key pair; the private file is 0600. Returns the key id.

    Refuses (AuditKeyError) to overwrite either file; see :func:`ensure_keypair` for first use.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (public_path, private_path):
        if os.path.lexists(path):
            raise AuditKeyError(f"{path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem, pub = _key_pems(key)
    if not _publish_or_explain(private_path, pem, 0o600):
        raise AuditKeyError(f"{private_path} already exists; refusing to overwrite a key")
    if not _publish_or_explain(public_path, pub, 0o644):
        raise AuditKeyError(f"{public_path} already exists; refusing to overwrite a key")
    return key_id(key.public_key())


def ensure_keypair(private_path: Path, public_path: Path) -> str:
    """First use: make the key pair unless it exists, and return the key id in force.

    Safe when several processes start together on a new machine: whichever links its private key
    first wins, every other one reads that key back and uses it (and writes the matching public
    key if the winner has not yet). A public key that does not match the private key is refused.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if not os.path.lexists(private_path):
        # The public key is always published after its private key, so test it first: a racer
        # that appears between the two tests is then seen as having made both.
        if os.path.lexists(public_path) and not os.path.lexists(private_path):
            raise AuditKeyError(
                f"{public_path} exists but its private key {private_path} does not; restore the "
                "private key, or move the public key aside to create a new pair"
            )
        pem, _ = _key_pems(Ed25519PrivateKey.generate())
        _publish_or_explain(private_path, pem, 0o600)  # lost the race: use the winner's key
    key = load_private(private_path)
    _, pub = _key_pems(key)
    if os.path.lexists(public_path) or not _publish_or_explain(public_path, pub, 0o644):
        try:
            held = load_public(public_path)
        except AuditKeyError:
            held = None
        if held is None or raw_public(held) != raw_public(key.public_key()):
            raise AuditKeyError(
                f"{public_path} does not hold the public key of {private_path}; move the wrong "
                "file aside"
            )
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
