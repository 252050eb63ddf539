"""Errors raised by the audit subsystem, each named after what failed."""

from __future__ import annotations

from cellblock.errors import CellblockError


class AuditError(CellblockError):
    """Base of every error the audit log raises."""


class AuditWriteError(AuditError):
    """An append could not be made durable (disk full, fsync failed, read-only, lock timeout).

    The caller must treat the event as unrecorded and refuse to run the code it describes.
    """

    exit_code = 74  # EX_IOERR


class AuditKeyError(AuditError):
    """A signing or verifying key is missing, unreadable, of the wrong type or unsafe."""

    exit_code = 78  # EX_CONFIG


class WitnessError(AuditError):
    """The witness refused a checkpoint or could not be read."""


class LogCorruptedError(AuditError):
    """The log is damaged somewhere other than its tail, so the writer refuses to append."""


class VerificationError(AuditError):
    """Raised in strict mode when verification finds a problem; subclasses name the problem."""

    exit_code = 1
    kind = "problem"


def _make(name: str, kind: str, doc: str) -> type[VerificationError]:
    return type(name, (VerificationError,), {"kind": kind, "__doc__": doc})


HashMismatchError = _make("HashMismatchError", "hash_mismatch", "A record's stored hash is wrong.")
ChainBreakError = _make("ChainBreakError", "chain_break", "A record does not link to the last.")
SeqGapError = _make("SeqGapError", "seq_gap", "Sequence numbers skip: records are missing.")
DuplicateRecordError = _make("DuplicateRecordError", "duplicate", "A record or segment repeats.")
ReorderingError = _make("ReorderingError", "reordering", "Records or segments are out of order.")
BadSignatureError = _make("BadSignatureError", "bad_signature", "A signature does not verify.")
UnknownKeyError = _make(
    "UnknownKeyError", "unknown_key", "Signed by a key outside the trust chain."
)
MissingCheckpointError = _make(
    "MissingCheckpointError", "missing_checkpoint", "Checkpoints are missing from the chain."
)
CheckpointMismatchError = _make(
    "CheckpointMismatchError", "checkpoint_mismatch", "A checkpoint does not match the chain."
)
TruncationError = _make("TruncationError", "truncation", "The log is shorter than witnessed.")
RollbackError = _make("RollbackError", "rollback", "The log was replaced by an older copy.")
ForkError = _make("ForkError", "fork", "The log diverges from what the witness saw.")
MissingSegmentError = _make("MissingSegmentError", "missing_segment", "A segment is missing.")
ManifestMismatchError = _make(
    "ManifestMismatchError", "manifest_mismatch", "A segment does not match its manifest."
)
UnauthorisedPruneError = _make(
    "UnauthorisedPruneError", "unauthorised_prune", "Segments were pruned without a signed record."
)
MalformedRecordError = _make("MalformedRecordError", "malformed", "Bytes do not parse as a record.")
UnsafeFileError = _make(
    "UnsafeFileError", "unsafe_file", "A log file is a link, FIFO, device or directory."
)
MissingQuarantineError = _make(
    "MissingQuarantineError",
    "missing_quarantine",
    "Bytes a recovery moved to quarantine are gone or changed.",
)

VERIFICATION_ERRORS: dict[str, type[VerificationError]] = {
    cls.kind: cls
    for cls in (
        HashMismatchError,
        ChainBreakError,
        SeqGapError,
        DuplicateRecordError,
        ReorderingError,
        BadSignatureError,
        UnknownKeyError,
        MissingCheckpointError,
        CheckpointMismatchError,
        TruncationError,
        RollbackError,
        ForkError,
        MissingSegmentError,
        ManifestMismatchError,
        UnauthorisedPruneError,
        MalformedRecordError,
        UnsafeFileError,
        MissingQuarantineError,
    )
}
