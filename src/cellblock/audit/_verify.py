"""The verifier: proves a log directory is complete, unaltered and signed by the trusted keys.

It never re-serialises: each record's hash is computed over the stored bytes. Each check below
states the invariant it enforces and reports a :class:`Problem` named after what failed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cellblock.audit._errors import AuditError, AuditKeyError, WitnessError
from cellblock.audit._format import (
    GENESIS_PREV,
    T_CHECKPOINT,
    T_GENESIS,
    T_MANIFEST,
    T_PRUNE,
    T_RECOVERED,
    LineError,
    canonical,
    decode_ordinary,
    parse_body,
    parse_ts,
    record_hash,
    seg_stem,
    split_line,
)
from cellblock.audit._keys import (
    TrustRoot,
    check_signature,
    key_id,
    public_from_hex,
    trusted_key_id,
)
from cellblock.audit._segments import list_segments
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


class _Verifier:
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

    def problem(
        self,
        kind: ProblemKind,
        msg: str,
        file: str | None = None,
        offset: int | None = None,
        seq: int | None = None,
    ) -> None:
        self.problems.append(Problem(kind, msg, file, offset, seq))

    def warn(self, kind: str, msg: str, file: str | None = None, seq: int | None = None) -> None:
        self.warnings.append(VerificationWarning(kind, msg, file, seq))

    # -- entry point ----------------------------------------------------------------------------

    def run(self) -> VerificationReport:
        segs = list_segments(self.dir)
        if not segs:
            known = self.witness.log_ids() if self.witness is not None else []
            if not known:
                raise VerificationNotPossible(f"{self.dir} holds no audit log segments")
            # Invariant: a log the witness has seen cannot vanish.
            self.problem(K.TRUNCATION, f"every segment is gone; the witness knows {known[0]}")
            return self._report()
        live_firsts = sorted(f for f, k in segs.items() if "jsonl" in k)
        live = live_firsts[-1] if live_firsts else None
        closed = sorted(
            f for f, k in segs.items() if f != live and k & {"manifest.json", "jsonl.gz"}
        )
        for f in live_firsts[:-1]:
            if {"manifest.json", "jsonl.gz"} <= segs[f]:
                self.warn(
                    "unfinished_rotation",
                    "rotation finished but the raw segment remains",
                    f"{seg_stem(f)}.jsonl",
                )
            else:
                closed.append(f)
        closed.sort()
        if live is not None and segs[live] & {"manifest.json", "jsonl.gz"}:
            self.warn(
                "unfinished_rotation",
                "live segment has a stale compressed copy",
                f"{seg_stem(live)}.jsonl.gz",
            )
        self._load_witness(segs, closed, live)
        manifests: dict[int, dict[str, Any] | None] = {}
        for f in closed:
            manifests[f] = self._read_manifest(f, segs[f])
        digests = {
            m["gz_sha256"]: f
            for f, m in manifests.items()
            if m and isinstance(m.get("gz_sha256"), str)
        }
        missing: list[tuple[int, dict[str, Any]]] = []
        for f in closed:
            self._closed_segment(f, segs[f], manifests[f], digests, missing)
        if live is not None:
            self._live_segment(live)
        elif closed:
            self.problem(K.MISSING_SEGMENT, "no live segment follows the last closed segment")
        for f, m in missing:
            name = f"{seg_stem(f)}.jsonl.gz"
            if self.s.pruned.get(name) == m.get("gz_sha256"):
                self.pruned_names.append(name)
            else:
                self.problem(
                    K.MISSING_SEGMENT,
                    "segment file is gone and no signed prune record covers it",
                    name,
                    None,
                    m.get("first_seq"),
                )
        self._final_checks()
        return self._report()

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

    # -- witness --------------------------------------------------------------------------------

    def _load_witness(self, segs: dict[int, set[str]], closed: list[int], live: int | None) -> None:
        if self.witness is None:
            return
        log_id = self._peek_log_id(closed, live)
        if log_id is None:
            return
        try:
            self.witnessed = self.witness.latest(log_id)
            if self.witnessed is None:
                others = self.witness.log_ids()
                if others:
                    self.problem(
                        K.FORK,
                        f"the witness knows log(s) {', '.join(others)} but not this log "
                        f"{log_id}: the log was replaced",
                    )
                else:
                    self.warn("unwitnessed", "the witness holds no checkpoint for this log")
        except WitnessError as exc:
            self.problem(K.BAD_SIGNATURE, f"witness unreadable: {exc}", "witness")
        if self.witnessed is not None:
            self.s.witness_seq = self.witnessed.size - 1

    def _peek_log_id(self, closed: list[int], live: int | None) -> str | None:
        for f in closed:
            try:
                m = json.loads((self.dir / f"{seg_stem(f)}.manifest.json").read_bytes())
                return str(m["log"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if live is not None:
            try:
                with open(self.dir / f"{seg_stem(live)}.jsonl", "rb") as fh:
                    _, body = split_line(fh.readline())
                return str(parse_body(body)["log"])
            except (OSError, LineError):
                return None
        return None

    # -- closed segments -------------------------------------------------------------------------

    def _read_manifest(self, f: int, kinds: set[str]) -> dict[str, Any] | None:
        name = f"{seg_stem(f)}.manifest.json"
        if "manifest.json" not in kinds:
            return None
        try:
            raw = (self.dir / name).read_bytes()
            m = json.loads(raw)
            if not isinstance(m, dict):
                raise ValueError("not an object")
            # Invariant: a manifest file is exactly its canonical JSON (no silent edits).
            if raw != canonical(m) + b"\n":
                raise ValueError("file is not in canonical form")
            _check_manifest_schema(m)
            return m
        except (OSError, ValueError) as exc:
            self.problem(K.MANIFEST_MISMATCH, f"manifest unreadable: {exc}", name, None, f)
            return None

    def _closed_segment(
        self,
        f: int,
        kinds: set[str],
        m: dict[str, Any] | None,
        digests: dict[str, int],
        missing: list[tuple[int, dict[str, Any]]],
    ) -> None:
        gz_name = f"{seg_stem(f)}.jsonl.gz"
        s = self.s
        gz_bytes: bytes | None = None
        if "jsonl.gz" in kinds:
            gz_bytes = (self.dir / gz_name).read_bytes()
        if m is None:
            # Invariant: every closed segment has a signed manifest.
            if gz_bytes is not None:
                dig = hashlib.sha256(gz_bytes).hexdigest()
                if dig in digests and digests[dig] != f:
                    self.problem(
                        K.DUPLICATE, f"copy of segment {seg_stem(digests[dig])}", gz_name, None, f
                    )
                    return
                self.problem(
                    K.MANIFEST_MISMATCH, "closed segment has no manifest", gz_name, None, f
                )
                self._walk_bytes(gz_name, gz_bytes, compressed=True)
            return
        mname = f"{seg_stem(f)}.manifest.json"
        self.segments.append(gz_name)
        # Invariant: the manifest describes the file it is named after.
        if m["segment"] != gz_name or m["first_seq"] != f:
            self.problem(
                K.REORDERING,
                f"manifest describes {m['segment']} but is stored as {mname}",
                mname,
                None,
                f,
            )
        if s.log_id is not None and m["log"] != s.log_id:
            self.problem(K.FORK, f"manifest belongs to log {m['log']}", mname, None, f)
        s.log_id = s.log_id or str(m["log"])
        # Invariant: a manifest is signed by the key in force at the end of its segment.
        end_key = m["end_key"]
        try:
            end_pub = public_from_hex(str(end_key["pub"]))
            if key_id(end_pub) != end_key["id"] or m["key"] != end_key["id"]:
                raise AuditKeyError("manifest key id does not match its public key")
            why = check_signature(end_pub, m)
            if why:
                self.problem(K.BAD_SIGNATURE, f"manifest: {why}", mname, None, f)
        except (AuditKeyError, KeyError, TypeError) as exc:
            self.problem(K.BAD_SIGNATURE, f"manifest key unusable: {exc}", mname, None, f)
        # Invariant: segments tile the seq space with no gap or overlap, each linking to the last.
        if f > s.expected:
            self.problem(
                K.MISSING_SEGMENT,
                f"records {s.expected}..{f - 1} are missing",
                gz_name,
                None,
                s.expected,
            )
        elif f < s.expected:
            self.problem(
                K.DUPLICATE, f"segment starts at seq {f}, already covered", gz_name, None, f
            )
            return
        elif s.prev is not None and m["first_prev"] != s.prev:
            self.problem(K.CHAIN_BREAK, "segment does not link to the previous one", gz_name, 0, f)
        if f == 0 and s.key is None:
            self._adopt_key(m["start_key"], mname)
        elif s.key is not None and m["start_key"].get("id") != s.key:
            self.problem(
                K.UNKNOWN_KEY,
                "segment starts under a key the chain did not announce",
                mname,
                None,
                f,
            )
        if gz_bytes is None:
            missing.append((f, m))
            self._skip_with_manifest(m, mname)
            return
        if hashlib.sha256(gz_bytes).hexdigest() != m["gz_sha256"]:
            dig = hashlib.sha256(gz_bytes).hexdigest()
            if dig in digests and digests[dig] != f:
                other = digests[dig]
                own_ok = any(
                    hashlib.sha256((self.dir / f"{seg_stem(o)}.jsonl.gz").read_bytes()).hexdigest()
                    == m["gz_sha256"]
                    for o in digests.values()
                    if o != f and (self.dir / f"{seg_stem(o)}.jsonl.gz").exists()
                )
                kind = K.REORDERING if own_ok else K.DUPLICATE
                self.problem(
                    kind, f"file holds the content of segment {seg_stem(other)}", gz_name, None, f
                )
                self._skip_with_manifest(m, mname)
                return
            self.problem(
                K.MANIFEST_MISMATCH,
                "compressed file digest differs from manifest",
                gz_name,
                None,
                f,
            )
        self._walk_bytes(gz_name, gz_bytes, compressed=True)
        # Invariant: the records end exactly where the signed manifest says.
        if s.expected - 1 != m["last_seq"] or s.prev != m["last_hash"]:
            self.problem(
                K.MANIFEST_MISMATCH,
                f"segment ends at seq {s.expected - 1}, manifest says {m['last_seq']}",
                gz_name,
                None,
                m["last_seq"],
            )
            self._skip_with_manifest(m, mname, walked=True)
        if s.key != m["end_key"]["id"]:
            self.problem(
                K.UNKNOWN_KEY,
                "manifest end key differs from the chain's key",
                mname,
                None,
                m["last_seq"],
            )

    def _skip_with_manifest(self, m: dict[str, Any], mname: str, walked: bool = False) -> None:
        """Carry the chain state across a segment whose records cannot be read."""
        s = self.s
        if not walked:
            for ev in m.get("key_events") or []:
                self._key_event(ev, mname, m["last_seq"])
            if s.key != m["end_key"]["id"]:
                self.problem(
                    K.UNKNOWN_KEY,
                    "manifest end key is not announced by the chain",
                    mname,
                    None,
                    m["last_seq"],
                )
            s.records += int(m["count"])
        s.expected = int(m["last_seq"]) + 1
        s.prev = str(m["last_hash"])
        s.last_cp = int(m["last_seq"])
        s.every = int(m.get("every", s.every))
        s.last_type = T_CHECKPOINT
        if s.witness_seq == m["last_seq"]:
            s.witness_hash = s.prev

    def _adopt_key(self, k: dict[str, Any], where: str) -> None:
        try:
            pub = public_from_hex(str(k["pub"]))
        except (AuditKeyError, KeyError) as exc:
            self.problem(K.UNKNOWN_KEY, f"genesis key unusable: {exc}", where)
            return
        if key_id(pub) != k.get("id"):
            self.problem(K.UNKNOWN_KEY, "genesis key id does not match its public key", where)
        if self.s.key is not None and self.s.key != key_id(pub):
            self.problem(K.UNKNOWN_KEY, "genesis key differs from the manifest's start key", where)
        self.s.key, self.s.pub = key_id(pub), pub
        if key_id(pub) not in self.s.chain_keys:
            self.s.chain_keys.append(key_id(pub))
        self.s.pubs[key_id(pub)] = pub

    def _key_event(self, ev: dict[str, Any], where: str, seq: int | None) -> None:
        """A key rotation: the next key is valid only if announced under the current key."""
        s = self.s
        if s.pub is None or ev.get("key") != s.key:
            self.problem(
                K.UNKNOWN_KEY, "key rotation not signed by the current key", where, None, seq
            )
            return
        why = check_signature(s.pub, ev)
        if why:
            self.problem(K.BAD_SIGNATURE, f"key rotation: {why}", where, None, seq)
            return
        s.signers.add(str(s.key))
        nk = ev["next_key"]
        try:
            pub = public_from_hex(str(nk["pub"]))
        except (AuditKeyError, KeyError, TypeError) as exc:
            self.problem(K.UNKNOWN_KEY, f"announced key unusable: {exc}", where, None, seq)
            return
        if key_id(pub) != nk.get("id"):
            self.problem(K.UNKNOWN_KEY, "announced key id does not match its key", where, None, seq)
            return
        s.key, s.pub = key_id(pub), pub
        s.chain_keys.append(s.key)
        s.pubs[s.key] = pub

    # -- records --------------------------------------------------------------------------------

    def _live_segment(self, f: int) -> None:
        name = f"{seg_stem(f)}.jsonl"
        data = (self.dir / name).read_bytes()
        self.segments.append(name)
        s = self.s
        if f > s.expected:
            self.problem(
                K.MISSING_SEGMENT,
                f"records {s.expected}..{f - 1} are missing",
                name,
                None,
                s.expected,
            )
        self._walk_bytes(name, data, compressed=False)

    def _walk_bytes(self, name: str, data: bytes, *, compressed: bool) -> None:
        if compressed:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                self.problem(K.MALFORMED, f"cannot decompress: {exc}", name)
                return
        entries: list[_Entry] = []
        fast = decode_ordinary
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            if nl < 0:
                # Invariant: every record ends with a newline; bytes after the last one are torn.
                self.torn = True
                last = next((x.rec for x in reversed(entries) if x.rec is not None), None)
                self.problem(
                    K.TRUNCATION,
                    f"partial record of {n - pos} bytes at end of file",
                    name,
                    pos,
                    self.s.expected if last is None else last["seq"] + 1,
                )
                break
            line = data[pos : nl + 1]
            quick = fast(line)
            if quick is not None:
                entries.append(_Entry(pos, quick[0], quick[1], quick[2], None, nl + 1 - pos))
                pos = nl + 1
                continue
            try:
                stored, body = split_line(line)
            except LineError as exc:
                entries.append(_Entry(pos, None, False, None, exc.message, len(line)))
                pos = nl + 1
                continue
            ok = record_hash(body) == stored
            try:
                rec: dict[str, Any] | None = parse_body(body)
                err = None
            except LineError as exc:
                rec, err = None, exc.message
            entries.append(_Entry(pos, stored, ok, rec, err, len(line)))
            pos = nl + 1
        present = _LazySeqs(entries)
        seen: dict[int, tuple[str, str]] = {}  # seq -> (hash, prev) of accepted records
        seg_first = entries[0].rec["seq"] if entries and entries[0].rec else None
        s = self.s
        for e in entries:
            rec = e.rec
            # Fast path for the common case: an ordinary record in place. Same checks, less work.
            if (
                rec is not None
                and e.ok_hash
                and rec["seq"] == s.expected
                and rec["prev"] == s.prev
                and rec["log"] == s.log_id
                and not rec["type"].startswith("log.")
                and rec["seq"] - s.witness_seq not in (0, 1)
            ):
                assert rec is not None and e.stored is not None
                seen[s.expected] = (e.stored, rec["prev"])
                s.expected += 1
                s.prev = e.stored
                s.records += 1
                if s.uncovered_from is None and not compressed:
                    s.uncovered_from = (name, e.offset, rec["ts"])
                if s.uncovered_from is not None:
                    s.uncovered_bytes += e.length
                s.last_type = rec["type"]
                continue
            self._record(name, e, present, seen, seg_first, compressed)
        if s.expected > 0 and s.prev is not None:
            s.head = RecordRef(s.expected - 1, s.prev)

    def _record(
        self,
        name: str,
        e: _Entry,
        present: _LazySeqs,
        seen: dict[int, tuple[str, str]],
        seg_first: int | None,
        compressed: bool,
    ) -> None:
        s = self.s
        if e.rec is None:
            kind = K.HASH_MISMATCH if e.stored is not None and not e.ok_hash else K.MALFORMED
            self.problem(kind, e.error or "unparseable record", name, e.offset, s.expected)
            s.expected += 1
            s.prev = e.stored  # None when the envelope itself is broken: skip the next link check
            return
        rec = e.rec
        seq: int = rec["seq"]
        stored = e.stored
        assert stored is not None
        # Invariant: seq increases by exactly one per record.
        if seq < s.expected:
            if seq in seen and seen[seq][0] == stored:
                self.problem(K.DUPLICATE, f"record {seq} appears again", name, e.offset, seq)
            elif seq in seen and seen[seq][1] == rec["prev"]:
                self.problem(
                    K.FORK,
                    f"a second, different record {seq} follows record {seq - 1}",
                    name,
                    e.offset,
                    seq,
                )
            elif seg_first is not None and seq < seg_first:
                self.problem(
                    K.DUPLICATE,
                    f"record {seq} replayed from an earlier segment",
                    name,
                    e.offset,
                    seq,
                )
            else:
                self.problem(
                    K.REORDERING, f"record {seq} after record {s.expected - 1}", name, e.offset, seq
                )
            return
        if seq > s.expected:
            if s.expected in present:
                self.problem(
                    K.REORDERING,
                    f"record {seq} where {s.expected} was expected",
                    name,
                    e.offset,
                    seq,
                )
            else:
                self.problem(
                    K.SEQ_GAP, f"records {s.expected}..{seq - 1} are missing", name, e.offset, seq
                )
        elif not e.ok_hash:
            # Invariant: the stored hash is SHA-256 of the domain tag and the stored bytes.
            self.problem(
                K.HASH_MISMATCH, "record bytes do not match their stored hash", name, e.offset, seq
            )
        elif s.prev is not None and rec["prev"] != s.prev:
            # Invariant: each record names its predecessor's hash.
            self.problem(
                K.CHAIN_BREAK, "record does not link to the previous record", name, e.offset, seq
            )
        if s.log_id is not None and rec["log"] != s.log_id:
            self.problem(K.FORK, f"record belongs to log {rec['log']}", name, e.offset, seq)
        seen[seq] = (stored, rec["prev"])
        s.log_id = s.log_id or rec["log"]
        try:
            self._typed(name, e, rec, seq)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Hostile but correctly hashed input must be reported, never crash the verifier.
            self.problem(
                K.MALFORMED, f"{rec['type']} record has a bad field: {exc!r}", name, e.offset, seq
            )
        s.expected = seq + 1
        s.prev = stored
        s.records += 1
        if seq == s.witness_seq:
            s.witness_hash = stored
        elif seq == s.witness_seq + 1:
            s.witness_record = rec["payload"] if rec["type"] == T_CHECKPOINT else None
        if not compressed and rec["type"] != T_CHECKPOINT and s.uncovered_from is None:
            s.uncovered_from = (name, e.offset, rec["ts"])
        if s.uncovered_from is not None:
            s.uncovered_bytes += e.length
        s.last_type = rec["type"]

    def _typed(self, name: str, e: _Entry, rec: dict[str, Any], seq: int) -> None:
        s = self.s
        t = rec["type"]
        p = rec["payload"]
        if seq == 0:
            # Invariant: the chain starts with a genesis record naming the first key.
            if t != T_GENESIS or not isinstance(p, dict):
                self.problem(K.MALFORMED, "first record is not a genesis record", name, e.offset, 0)
                return
            if rec["prev"] != GENESIS_PREV:
                self.problem(
                    K.CHAIN_BREAK, "genesis does not start from the zero hash", name, e.offset, 0
                )
            self._adopt_key({"id": p.get("key"), "pub": p.get("pub")}, name)
            s.every = int(p.get("every", s.every))
            return
        if t.startswith("log.") and not isinstance(p, dict):
            self.problem(K.MALFORMED, f"{t} payload is not an object", name, e.offset, seq)
            return
        if t == T_CHECKPOINT:
            self._checkpoint(name, e, rec, seq, p)
        elif t == T_PRUNE:
            # Invariant: only the current key may authorise deleting segments.
            why = None if s.pub is None else check_signature(s.pub, p)
            if s.pub is None or p.get("key") != s.key or why:
                self.problem(
                    K.UNAUTHORISED_PRUNE,
                    f"prune record not signed by the current key: {why or 'wrong key'}",
                    name,
                    e.offset,
                    seq,
                )
            else:
                for v in p.get("segments", []):
                    s.pruned[str(v.get("segment"))] = str(v.get("gz_sha256"))
        elif t == T_MANIFEST:
            self._manifest_record(name, e, p, seq)
        elif t == T_RECOVERED:
            self.warn(
                "recovered",
                f"writer recovered from a crash: {p.get('length')} bytes at "
                f"offset {p.get('offset')} of {p.get('segment')} moved to "
                f"{p.get('moved_to')}",
                name,
                seq,
            )
        elif t == T_GENESIS:
            self.problem(K.MALFORMED, "second genesis record", name, e.offset, seq)

    def _checkpoint(
        self, name: str, e: _Entry, rec: dict[str, Any], seq: int, p: dict[str, Any]
    ) -> None:
        s = self.s
        # Invariant: a checkpoint signs exactly the chain before it.
        if p.get("log") != s.log_id or p.get("size") != seq or p.get("head") != rec["prev"]:
            self.problem(
                K.CHECKPOINT_MISMATCH,
                "checkpoint does not describe the chain before it",
                name,
                e.offset,
                seq,
            )
        if s.pub is None or p.get("key") != s.key:
            self.problem(
                K.UNKNOWN_KEY,
                f"checkpoint signed by {str(p.get('key'))[:24]}…, not by "
                f"the current key {str(s.key)[:24]}…",
                name,
                e.offset,
                seq,
            )
        else:
            why = check_signature(s.pub, p)
            if why:
                self.problem(K.BAD_SIGNATURE, f"checkpoint: {why}", name, e.offset, seq)
            else:
                s.signers.add(str(s.key))
                if "next_key" in p:
                    self._key_event(p, name, seq)
        # Invariant: no more than `every` records between checkpoints.
        base = s.last_cp if s.last_cp is not None else 0
        if seq - base - 1 > s.every:
            self.problem(
                K.MISSING_CHECKPOINT,
                f"{seq - base - 1} records between checkpoints, at most {s.every} allowed",
                name,
                e.offset,
                seq,
            )
        s.last_cp = seq
        with contextlib.suppress(TypeError, ValueError):
            s.every = int(p.get("every", s.every))
        s.uncovered_from = None
        s.uncovered_bytes = 0

    def _manifest_record(self, name: str, e: _Entry, p: dict[str, Any], seq: int) -> None:
        # Invariant: the chain's copy of a manifest equals the manifest file (when kept).
        mpath = self.dir / f"{seg_stem(int(p.get('first_seq', -1)))}.manifest.json"
        try:
            held = json.loads(mpath.read_bytes())
        except (OSError, ValueError):
            self.problem(
                K.MISSING_SEGMENT, f"manifest file {mpath.name} is missing", name, e.offset, seq
            )
            return
        if held != p:
            self.problem(
                K.MANIFEST_MISMATCH,
                f"{mpath.name} differs from its copy in the chain",
                name,
                e.offset,
                seq,
            )

    # -- the end --------------------------------------------------------------------------------

    def _final_checks(self) -> None:
        s = self.s
        if s.last_cp is not None and s.expected - s.last_cp - 1 > s.every:
            self.problem(
                K.MISSING_CHECKPOINT,
                f"{s.expected - s.last_cp - 1} records after the last checkpoint",
                None,
                None,
                s.last_cp,
            )
        # Invariant: the chain's keys descend from the trust root.
        if self.trusted not in s.chain_keys:
            keys = ", ".join(k[:24] + "…" for k in s.chain_keys) or "no key"
            self.problem(
                K.UNKNOWN_KEY,
                f"the log is signed by {keys}, none of which is the trust root "
                f"{self.trusted[:24]}…",
            )
        elif (
            self.trusted != (s.chain_keys[0] if s.chain_keys else None)
            and self.trusted not in s.signers
        ):
            self.problem(K.UNKNOWN_KEY, "the trusted key never signed a checkpoint in this log")
        if s.uncovered_from is not None and s.uncovered_bytes:
            fname, off, ts = s.uncovered_from
            try:
                age = self.now - parse_ts(ts)
            except ValueError:
                age = 0.0
            self.warn(
                "uncovered_tail",
                f"{s.expected - (s.last_cp or 0) - 1} records "
                f"({s.uncovered_bytes} bytes, oldest {age:.0f}s old) from offset {off} are "
                "not yet covered by a signed checkpoint",
                fname,
            )
        self._witness_checks()

    def _witness_checks(self) -> None:
        w, s = self.witnessed, self.s
        if w is None:
            return
        # Invariant: the witnessed checkpoint is signed by a key of this log's chain.
        if w.log_id != s.log_id:
            self.problem(K.FORK, "witnessed checkpoint belongs to another log", "witness")
            return
        if w.key_id not in s.chain_keys:
            self.problem(
                K.UNKNOWN_KEY,
                "witnessed checkpoint signed by a key outside the chain",
                "witness",
                None,
                w.size,
            )
        else:
            pub = s.pubs.get(w.key_id)
            why = "key unavailable" if pub is None else check_signature(pub, w.payload)
            if why:
                self.problem(
                    K.BAD_SIGNATURE, f"witnessed checkpoint: {why}", "witness", None, w.size
                )
                return
        # Invariant: the log contains the witnessed head, at the witnessed size.
        if s.expected < w.size + 1:
            # A consistent, cleanly checkpointed older state is a rollback; anything else is a cut.
            clean = s.last_type == T_CHECKPOINT and not self.torn and not self.problems
            kind = K.ROLLBACK if clean else K.TRUNCATION
            what = (
                "an older copy of the log"
                if kind == K.ROLLBACK
                else "the tail of the log is missing"
            )
            self.problem(
                kind,
                f"log has {s.expected} records but the witness saw {w.size}: {what}",
                self.segments[-1] if self.segments else None,
                None,
                s.expected,
            )
        elif s.witness_hash is not None and s.witness_hash != w.head:
            self.problem(
                K.FORK,
                f"record {w.size - 1} differs from the witnessed head",
                None,
                None,
                w.size - 1,
            )
        elif s.witness_hash is not None and s.witness_record != w.payload:
            # Invariant: the witnessed checkpoint record itself is in the log, unchanged.
            self.problem(
                K.FORK, f"record {w.size} is not the witnessed checkpoint", None, None, w.size
            )


_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "log": str,
    "segment": str,
    "first_seq": int,
    "last_seq": int,
    "first_prev": str,
    "last_hash": str,
    "count": int,
    "gz_sha256": str,
    "start_key": dict,
    "end_key": dict,
    "key_events": list,
    "key": str,
    "last_ts": str,
    "every": int,
}


def _check_manifest_schema(m: dict[str, Any]) -> None:
    """Every field the verifier relies on is present with the right type (hostile input)."""
    for k, t in _MANIFEST_TYPES.items():
        if not isinstance(m.get(k), t) or isinstance(m.get(k), bool):
            raise ValueError(f"field {k!r} missing or of the wrong type")
    for k in ("start_key", "end_key"):
        if not all(isinstance(m[k].get(x), str) for x in ("id", "pub")):
            raise ValueError(f"field {k!r} lacks id/pub")
    for ev in m["key_events"]:
        if not isinstance(ev, dict) or not isinstance(ev.get("next_key"), dict):
            raise ValueError("malformed key event")


def verify(
    directory: Path,
    *,
    trust_root: TrustRoot,
    witness: Witness | None = None,
    now: float | None = None,
) -> VerificationReport:
    """Check every invariant of the log in ``directory`` and report each problem found.

    ``trust_root`` is the pinned public key: an ``Ed25519PublicKey``, a PEM file path, raw key
    bytes, or a fingerprint ``ed25519:<sha256 hex>``. Raises VerificationNotPossible (exit 2)
    when verification cannot run; otherwise returns a report (``ok`` false on any problem).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise VerificationNotPossible(f"audit directory {directory} does not exist")
    try:
        trusted = trusted_key_id(trust_root)
    except (AuditKeyError, ValueError) as exc:
        raise VerificationNotPossible(f"cannot use trust root: {exc}") from None
    try:
        return _Verifier(directory, trusted, witness, time.time() if now is None else now).run()
    except PermissionError as exc:
        raise VerificationNotPossible(f"cannot read {exc.filename}: {exc.strerror}") from None
    except OSError as exc:
        if os.path.exists(directory):
            raise VerificationNotPossible(f"cannot read the audit log: {exc}") from None
        raise
