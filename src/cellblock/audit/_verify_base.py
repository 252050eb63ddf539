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

# Report order of problems (lower first).
TIER_FILE = 0  # a log file is not a regular file: nothing read through it can be trusted
TIER_LOCAL = 1  # found in the records or manifests, at a file and offset
TIER_WITNESS = 2  # the log disagrees with what the witness saw (rollback, cut, fork)
TIER_SUMMARY = 3  # whole-log conclusions that the findings above usually explain


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
    # where the witnessed head (witness_seq) and checkpoint (witness_seq + 1) sit: file, offset
    witness_at: dict[int, tuple[str, int]] = field(default_factory=dict)
    # log.recovered records: (seq, file, offset, payload, record ts)
    recovered: list[tuple[int, str, int, dict[str, Any], str]] = field(default_factory=list)
    end: tuple[str, int] | None = None  # the last file walked and its (decompressed) length


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
        self.tiers: list[int] = []  # parallel to self.problems

    def problem(
        self,
        kind: ProblemKind,
        msg: str,
        file: str | None = None,
        offset: int | None = None,
        seq: int | None = None,
        *,
        tier: int = TIER_LOCAL,
    ) -> None:
        """Record a problem; ``tier`` orders the report (see TIER_*), discovery order within."""
        if kind == K.UNSAFE_FILE:
            tier = TIER_FILE
        self.problems.append(Problem(kind, msg, file, offset, seq))
        self.tiers.append(tier)

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
            # Most telling first: a wrong file, then what the walk found where it found it, then
            # what the witness shows, then the summaries those explain (e.g. an unknown trust root
            # after a rollback to before a key rotation).
            problems=tuple(
                self.problems[i]
                for i in sorted(range(len(self.problems)), key=self.tiers.__getitem__)
            ),
            warnings=tuple(self.warnings),
            segments=tuple(self.segments),
            pruned_segments=tuple(self.pruned_names),
            keys=tuple(self.s.chain_keys),
            witnessed_size=None if self.witnessed is None else self.witnessed.size,
        )
