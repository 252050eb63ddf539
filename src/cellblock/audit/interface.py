"""Public interfaces and value types of the audit log.

Frozen dataclasses describe what the log hands out (record references, checkpoints, verification
reports); :class:`Witness` is the abstract base a checkpoint witness implements, so that a remote
witness (a transparency service, another host) can be added beside :class:`DirectoryWitness`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from cellblock.audit._errors import VERIFICATION_ERRORS, VerificationError


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where an appended record sits in the chain: its sequence number and its hash (hex)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the log ``log_id`` held ``size`` records ending in ``head``.

    ``payload`` is the exact signed mapping (including ``sig``) as stored in the log; the other
    fields are read from it for convenience.
    """

    log_id: str
    size: int
    head: str
    ts: str
    key_id: str
    payload: dict[str, Any] = field(compare=False, hash=False)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Checkpoint:
        try:
            return cls(
                log_id=str(payload["log"]),
                size=int(payload["size"]),
                head=str(payload["head"]),
                ts=str(payload["ts"]),
                key_id=str(payload["key"]),
                payload=dict(payload),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a checkpoint: missing or bad field {exc}") from None


class Witness(ABC):
    """Keeps the newest checkpoint of each log somewhere the log's writer cannot rewrite.

    Invariant a witness must keep: the checkpoint it returns for a log never goes backwards
    (a smaller ``size`` never replaces a larger one), and two different heads for the same size
    are refused as a fork.
    """

    @abstractmethod
    def submit(self, checkpoint: Checkpoint) -> None:
        """Record ``checkpoint`` if it is newer than what is held; raise WitnessError on a fork."""

    @abstractmethod
    def latest(self, log_id: str) -> Checkpoint | None:
        """The newest checkpoint held for ``log_id``, or None."""

    @abstractmethod
    def log_ids(self) -> list[str]:
        """Every log id this witness holds a checkpoint for."""


class ProblemKind(enum.StrEnum):
    """The kinds of problem the verifier names."""

    MALFORMED = "malformed"
    HASH_MISMATCH = "hash_mismatch"
    CHAIN_BREAK = "chain_break"
    SEQ_GAP = "seq_gap"
    DUPLICATE = "duplicate"
    REORDERING = "reordering"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    MISSING_CHECKPOINT = "missing_checkpoint"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    TRUNCATION = "truncation"
    ROLLBACK = "rollback"
    FORK = "fork"
    MISSING_SEGMENT = "missing_segment"
    MANIFEST_MISMATCH = "manifest_mismatch"
    UNAUTHORISED_PRUNE = "unauthorised_prune"
    UNSAFE_FILE = "unsafe_file"
    MISSING_QUARANTINE = "missing_quarantine"


@dataclass(frozen=True, slots=True)
class Problem:
    """One integrity failure: what kind, where (file, byte offset, seq) and a sentence about it.

    For a compressed segment ``offset`` counts bytes of the decompressed stream.
    """

    kind: ProblemKind
    message: str
    file: str | None = None
    offset: int | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "file": self.file,
            "offset": self.offset,
            "seq": self.seq,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {v}"
            for k, v in (("file", self.file), ("offset", self.offset), ("seq", self.seq))
            if v is not None
        )
        return f"{self.kind}: {self.message}" + (f" ({where})" if where else "")


@dataclass(frozen=True, slots=True)
class VerificationWarning:
    """Something an operator should know that is not evidence of tampering."""

    kind: str
    message: str
    file: str | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file, "seq": self.seq, "message": self.message}

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The verifier's findings. ``ok`` is true when there are no problems (warnings allowed)."""

    directory: str
    log_id: str | None
    records: int
    head: RecordRef | None
    problems: tuple[Problem, ...]
    warnings: tuple[VerificationWarning, ...]
    segments: tuple[str, ...]
    pruned_segments: tuple[str, ...]
    keys: tuple[str, ...]
    witnessed_size: int | None

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {str(p.kind) for p in self.problems}

    def raise_for_problems(self) -> None:
        """Strict mode: raise the VerificationError subclass named after the first problem."""
        if self.problems:
            first = self.problems[0]
            cls = VERIFICATION_ERRORS.get(str(first.kind), VerificationError)
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise cls(f"audit log failed verification: {first}{more}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": self.directory,
            "log_id": self.log_id,
            "records": self.records,
            "head": None if self.head is None else {"seq": self.head.seq, "hash": self.head.hash},
            "segments": list(self.segments),
            "pruned_segments": list(self.pruned_segments),
            "keys": list(self.keys),
            "witnessed_size": self.witnessed_size,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
        }
