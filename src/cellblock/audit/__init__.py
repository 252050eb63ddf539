"""Tamper-evident audit log: hash chain, signed checkpoints, witness, rotation, retention.

Typical use::

    from cellblock.audit import AuditLog, DirectoryWitness, verify

    with AuditLog.open(audit_dir, signing_key=key, witness=DirectoryWitness(wdir)) as log:
        log.append("exec.start", {"code_sha256": digest})  # durable: on disk when it returns

    report = verify(audit_dir, trust_root=public_key_path, witness=DirectoryWitness(wdir))

See docs/audit.md for the format, the guarantees and what the verifier reports.
"""

from __future__ import annotations

from cellblock.audit._errors import (
    AuditError,
    AuditKeyError,
    AuditWriteError,
    LogCorruptedError,
    VerificationError,
    WitnessError,
)
from cellblock.audit._keys import ensure_keypair, generate_keypair, key_id, load_public
from cellblock.audit._log import AuditLog, AuditRecordError
from cellblock.audit._paths import default_audit_dir, default_private_key, default_public_key
from cellblock.audit._receipts import (
    Receipt,
    ReceiptError,
    ReceiptProblem,
    ReceiptReport,
    verify_receipt,
)
from cellblock.audit._verify import VerificationNotPossible, verify
from cellblock.audit._witness import DirectoryWitness
from cellblock.audit.interface import (
    Checkpoint,
    Problem,
    ProblemKind,
    RecordRef,
    VerificationReport,
    VerificationWarning,
    Witness,
)

__all__ = [
    "AuditError",
    "AuditKeyError",
    "AuditLog",
    "AuditRecordError",
    "AuditWriteError",
    "Checkpoint",
    "DirectoryWitness",
    "LogCorruptedError",
    "Problem",
    "ProblemKind",
    "Receipt",
    "ReceiptError",
    "ReceiptProblem",
    "ReceiptReport",
    "RecordRef",
    "VerificationError",
    "VerificationNotPossible",
    "VerificationReport",
    "VerificationWarning",
    "Witness",
    "WitnessError",
    "default_audit_dir",
    "default_private_key",
    "default_public_key",
    "ensure_keypair",
    "generate_keypair",
    "key_id",
    "load_public",
    "verify",
    "verify_receipt",
]
