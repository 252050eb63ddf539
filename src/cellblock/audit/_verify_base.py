"""The verifier's problem model and shared state: what was found, where, and the chain so far.

:class:`_Base` collects problems and warnings and carries the walk's state; the other
``_verify_*`` modules each add one family of checks on top of it (keys, records, closed
segments, witness) and :mod:`cellblock.audit._verify` runs them in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cellblock.audit._errors import AuditError
from cellblock.audit._format import GENESIS_PREV
from cellblock.audit._fsutil import NotRegularFileError, read_regular
from cellblock.audit.interface import (
    Checkpoint,
    Problem,
    ProblemKind,
    RecordRef,
    VerificationReport,
    VerificationWarning,
    Witness,
)

K = ProblemKind


class VerificationNotPossible(AuditError):
    """Verification could not run at all (missing directory, unreadable trust root)."""

    exit_code = 2


@dataclass(slots=True)
class _Entry:
    offset: int
    stored: str | None
    ok_hash: bool
    rec: dict[str, Any] | None
    error: str | None
    length: int


class _LazySeqs:
    """The seqs present in a segment, computed only if an anomaly needs them."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries
        self._set: set[int] | None = None

    def __contains__(self, seq: int) -> bool:
        if self._set is None:
            self._set = {e.rec["seq"] for e in self._entries if e.rec is not None}
        return seq in self._set


@dataclass
class _State:
    expected: int = 0
    prev: str | None = GENESIS_PREV
    log_id: str | None = None
    key: str | None = None
    pub: Ed25519PublicKey | None = None
    chain_keys: list[str] = field(default_factory=list)
    signers: set[str] = field(default_factory=set)
    last_cp: int | None = None
    every: int = 1000
    last_type: str | None = None
    records: int = 0
    witness_seq: int = -1
    witness_hash: str | None = None
    uncovered_from: tuple[str, int, str] | None = None  # file, offset, ts
    uncovered_bytes: int = 0
    pruned: dict[str, str] = field(default_factory=dict)  # segment name -> gz sha256
    head: RecordRef | None = None
    pubs: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    witness_record: Any = None  # the log's copy of the witnessed checkpoint


class _Base:
    def __init__(self, directory: Path, trusted: str, witness: Witness | None, now: float) -> None:
        self.dir = directory
        self.trusted = trusted
        self.witness = witness
        self.now = now
        self.problems: list[Problem] = []
        self.warnings: list[VerificationWarning] = []
        self.s = _State()
        self.segments: list[str] = []
        self.pruned_names: list[str] = []
        self.witnessed: Checkpoint | None = None
        self.torn = False
        self.unsafe: set[str] = set()  # files already reported as not regular

    def problem(
        self,
        kind: ProblemKind,
        msg: str,
        file: str | None = None,
        offset: int | None = None,
        seq: int | None = None,
    ) -> None:
        self.problems.append(Problem(kind, msg, file, offset, seq))

    def read(self, name: str, seq: int | None = None) -> bytes | None:
        """A log file's bytes, or None (reported as unsafe_file) if it is not a regular file.

        Never follows a link (a copy outside the log must not verify as the log) and never
        blocks on a FIFO.
        """
        try:
            return read_regular(self.dir / name)
        except NotRegularFileError as exc:
            if name not in self.unsafe:
                self.unsafe.add(name)
                self.problem(K.UNSAFE_FILE, f"{name} {exc.what}", name, 0, seq)
            return None

    def warn(self, kind: str, msg: str, file: str | None = None, seq: int | None = None) -> None:
        self.warnings.append(VerificationWarning(kind, msg, file, seq))

    def _report(self) -> VerificationReport:
        return VerificationReport(
            directory=str(self.dir),
            log_id=self.s.log_id,
            records=self.s.records,
            head=self.s.head,
            problems=tuple(self.problems),
            warnings=tuple(self.warnings),
            segments=tuple(self.segments),
            pruned_segments=tuple(self.pruned_names),
            keys=tuple(self.s.chain_keys),
            witnessed_size=None if self.witnessed is None else self.witnessed.size,
        )
