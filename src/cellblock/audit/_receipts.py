"""Receipts: a run's pointer into the log that recorded it, and the check that it is really there.

A :class:`Receipt` names the log (its id and its signing key's fingerprint) and the sequence
number and hash of each record the run left: ``decision`` always, ``approval`` when a person was
asked, ``execution.started`` and ``execution.finished`` when the program ran. Because every
record's hash covers the one before it, and checkpoints sign the chain, a receipt that checks out
against a log that verifies proves that this run (this ``run_id`` and code digest) was recorded
there, in that place, and has not been altered since.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cellblock.audit._errors import AuditError
from cellblock.audit._format import (
    LineError,
    decode_line,
    decode_ordinary,
    seg_stem,
)
from cellblock.audit._fsutil import read_regular
from cellblock.audit._keys import TrustRoot
from cellblock.audit._segments import list_segments
from cellblock.audit._verify import verify
from cellblock.audit.interface import RecordRef, VerificationReport, Witness

RECEIPT_VERSION: Final = 1

# receipt field -> the record type it points at
RECEIPT_RECORDS: Final = {
    "decision": "decision",
    "approval": "approval",
    "started": "execution.started",
    "finished": "execution.finished",
}


class ReceiptError(AuditError):
    """A receipt (or its JSON form) is malformed."""

    exit_code = 65  # EX_DATAERR


def _ref_dict(ref: RecordRef | None) -> dict[str, Any] | None:
    return None if ref is None else {"seq": ref.seq, "hash": ref.hash}


def _ref_from(value: Any, name: str) -> RecordRef | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReceiptError(f"receipt field {name!r} must be an object with seq and hash")
    seq, digest = value.get("seq"), value.get("hash")
    if type(seq) is not int or seq < 0:
        raise ReceiptError(f"receipt field {name}.seq must be a non-negative integer")
    if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise ReceiptError(f"receipt field {name}.hash must be 64 lowercase hex digits")
    return RecordRef(seq, digest)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a run was recorded: the log's identity and the seq and hash of each of its records.

    Which records exist depends on the outcome: a blocked run has ``decision`` only; a run a
    person refused has ``decision`` and ``approval``; a run that executed also has ``started``
    and ``finished`` (``approval`` only if it was reviewed). A record the log could not write
    (only possible when the policy has ``audit.required: false``, or for ``finished`` when the
    pipeline raised ``AuditUnavailableError`` with the result attached) is ``None``.
    """

    log_id: str
    key_id: str
    run_id: str
    code_sha256: str
    decision: RecordRef | None = None
    approval: RecordRef | None = None
    started: RecordRef | None = None
    finished: RecordRef | None = None

    def records(self) -> list[tuple[str, RecordRef]]:
        """(record type, reference) for every record this receipt points at, in log order."""
        out = []
        for name, type_ in RECEIPT_RECORDS.items():
            ref = getattr(self, name)
            if ref is not None:
                out.append((type_, ref))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": RECEIPT_VERSION,
            "log_id": self.log_id,
            "key_id": self.key_id,
            "run_id": self.run_id,
            "code_sha256": self.code_sha256,
            **{name: _ref_dict(getattr(self, name)) for name in RECEIPT_RECORDS},
        }

    @classmethod
    def from_dict(cls, data: Any) -> Receipt:
        """Read :meth:`to_dict`'s form back; ReceiptError names the first bad field."""
        if not isinstance(data, dict):
            raise ReceiptError("a receipt must be a JSON object")
        if data.get("v") != RECEIPT_VERSION:
            raise ReceiptError(f"unsupported receipt version {data.get('v')!r}")
        text: dict[str, str] = {}
        for name in ("log_id", "key_id", "run_id", "code_sha256"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise ReceiptError(f"receipt field {name!r} must be a non-empty string")
            text[name] = value
        refs = {name: _ref_from(data.get(name), name) for name in RECEIPT_RECORDS}
        return cls(text["log_id"], text["key_id"], text["run_id"], text["code_sha256"], **refs)


@dataclass(frozen=True, slots=True)
class ReceiptProblem:
    """Why a receipt does not check out: ``kind`` is one of the names below, ``seq`` the record.

    Kinds: ``log_failed`` (the log itself does not verify), ``wrong_log`` (the receipt names
    another log), ``wrong_key`` (the receipt's key never signed this log), ``record_missing``
    (no record at that seq, or it was pruned), ``hash_mismatch`` (a different record is at that
    seq), ``wrong_record`` (the record there is of another type, run or program).
    """

    kind: str
    message: str
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seq": self.seq, "message": self.message}

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}" + ("" if self.seq is None else f" (seq {self.seq})")


@dataclass(frozen=True, slots=True)
class ReceiptReport:
    """The outcome of :func:`verify_receipt`: the log's own report plus the receipt's problems."""

    receipt: Receipt
    log: VerificationReport
    problems: tuple[ReceiptProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "receipt": self.receipt.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
            "log": self.log.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class IndexedRecord:
    """The parts of a stored record a receipt is checked against."""

    seq: int
    hash: str
    type: str
    log_id: str
    run_id: Any
    code_sha256: Any


def stored_lines(directory: Path) -> Iterator[bytes]:
    """Every stored line of the log in ``directory``, in segment order (unreadable ones skipped)."""
    segs = list_segments(directory)
    for first in sorted(segs):
        kinds = segs[first]
        try:
            if "jsonl" in kinds:
                data = read_regular(directory / f"{seg_stem(first)}.jsonl")
            elif "jsonl.gz" in kinds:
                data = gzip.decompress(read_regular(directory / f"{seg_stem(first)}.jsonl.gz"))
            else:
                continue
        except (OSError, EOFError, gzip.BadGzipFile):
            continue  # the log's own verification names what is wrong with this segment
        yield from data.splitlines(keepends=True)


def index_records(directory: Path, seqs: Iterable[int]) -> dict[int, IndexedRecord]:
    """Read the records at ``seqs`` from the log in ``directory`` (one pass over its segments).

    A line that does not decode, or whose stored hash does not match its bytes, is left out:
    the record is then reported missing, and the log's verifier says what is wrong with it.
    """
    wanted = set(seqs)
    found: dict[int, IndexedRecord] = {}
    if not wanted:
        return found
    for line in stored_lines(directory):
        fast = decode_ordinary(line)
        if fast is not None and (fast[2]["seq"] not in wanted or not fast[1]):
            continue  # cheap skip: not one we want, or its hash is wrong
        try:
            stored, rec = decode_line(line)
        except LineError:
            continue
        seq = rec["seq"]
        if seq not in wanted or seq in found:
            continue
        payload = rec["payload"] if isinstance(rec["payload"], dict) else {}
        found[seq] = IndexedRecord(
            seq,
            stored,
            rec["type"],
            rec["log"],
            payload.get("run_id"),
            payload.get("code_sha256"),
        )
    return found


def check_receipt(
    receipt: Receipt, log: VerificationReport, records: dict[int, IndexedRecord]
) -> list[ReceiptProblem]:
    """The receipt's problems against a verified log and its indexed records."""
    problems: list[ReceiptProblem] = []
    if not log.ok:
        first = log.problems[0]
        more = f" and {len(log.problems) - 1} more" if len(log.problems) > 1 else ""
        problems.append(
            ReceiptProblem("log_failed", f"the log does not verify: {first}{more}", first.seq)
        )
    if log.log_id is not None and log.log_id != receipt.log_id:
        problems.append(
            ReceiptProblem(
                "wrong_log", f"the receipt names log {receipt.log_id}, this is log {log.log_id}"
            )
        )
    if log.keys and receipt.key_id not in log.keys:
        problems.append(
            ReceiptProblem("wrong_key", f"the receipt's key {receipt.key_id} never signed this log")
        )
    for type_, ref in receipt.records():
        rec = records.get(ref.seq)
        if rec is None:
            problems.append(
                ReceiptProblem(
                    "record_missing",
                    f"no readable record at seq {ref.seq} for {type_!r} (removed, damaged or "
                    "pruned)",
                    ref.seq,
                )
            )
            continue
        if rec.hash != ref.hash:
            problems.append(
                ReceiptProblem(
                    "hash_mismatch",
                    f"the {type_!r} record at seq {ref.seq} has hash {rec.hash[:16]}…, the "
                    f"receipt says {ref.hash[:16]}…",
                    ref.seq,
                )
            )
            continue
        wrong = [
            f"{what} is {got!r}, not {want!r}"
            for what, got, want in (
                ("type", rec.type, type_),
                ("log", rec.log_id, receipt.log_id),
                ("run_id", rec.run_id, receipt.run_id),
                ("code_sha256", rec.code_sha256, receipt.code_sha256),
            )
            if got != want
        ]
        if wrong:
            problems.append(
                ReceiptProblem(
                    "wrong_record", f"the record at seq {ref.seq}: " + "; ".join(wrong), ref.seq
                )
            )
    return problems


def verify_receipt(
    receipt: Receipt,
    directory: Path,
    *,
    trust_root: TrustRoot,
    witness: Witness | None = None,
) -> ReceiptReport:
    """Verify the log in ``directory`` and check that ``receipt``'s records are in it.

    ``ok`` only when the whole log verifies against ``trust_root`` and every record the receipt
    names is at its seq with its hash, its type, the receipt's run id and code digest. Raises
    VerificationNotPossible when the log cannot be verified at all (as :func:`verify`).
    """
    directory = Path(directory)
    report = verify(directory, trust_root=trust_root, witness=witness)
    records = index_records(directory, (ref.seq for _, ref in receipt.records()))
    return ReceiptReport(receipt, report, tuple(check_receipt(receipt, report, records)))
