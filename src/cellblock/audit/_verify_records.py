"""Verifier walk over a segment's records: the fast path, then each invariant per record.

It never re-serialises: each record's hash is computed over the stored bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
import zlib
from typing import Any

from cellblock.audit._format import (
    GENESIS_PREV,
    T_CHECKPOINT,
    T_GENESIS,
    T_MANIFEST,
    T_PRUNE,
    T_RECOVERED,
    LineError,
    decode_ordinary,
    parse_body,
    record_hash,
    seg_stem,
    split_line,
)
from cellblock.audit._fsutil import NotRegularFileError, check_real_dir, read_regular
from cellblock.audit._keys import check_signature
from cellblock.audit._verify_base import K, _Entry, _LazySeqs
from cellblock.audit._verify_keys import _KeyChain
from cellblock.audit.interface import RecordRef

QUARANTINE = "quarantine"
_QUARANTINE_RE = re.compile(r"quarantine/[A-Za-z0-9][A-Za-z0-9._-]*")


class _RecordWalk(_KeyChain):
    def _live_segment(self, f: int) -> None:
        name = f"{seg_stem(f)}.jsonl"
        s = self.s
        data = self.read(name, max(f, s.expected))
        if data is None:
            return
        self.segments.append(name)
        if f > s.expected:
            self.problem(
                K.MISSING_SEGMENT,
                f"records {s.expected}..{f - 1} are missing before this segment",
                name,
                0,
                s.expected,
            )
        self._walk_bytes(name, data, compressed=False)

    def _walk_bytes(self, name: str, data: bytes, *, compressed: bool) -> None:
        if compressed:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                self.problem(K.MALFORMED, f"cannot decompress: {exc}", name, 0, self.s.expected)
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
        s.end = (name, pos)  # just past the last whole record (a torn tail is not counted)

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
            s.witness_at[seq] = (name, e.offset)
        elif seq == s.witness_seq + 1:
            s.witness_record = rec["payload"] if rec["type"] == T_CHECKPOINT else None
            s.witness_at[seq] = (name, e.offset)
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
            s.recovered.append((seq, name, e.offset, p, rec["ts"]))
            self._quarantine(name, e, p, seq)
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
                    self._key_event(p, name, seq, e.offset)
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

    def _quarantine(self, name: str, e: _Entry, p: dict[str, Any], seq: int) -> None:
        """Invariant: the bytes a recovery moved aside are still in quarantine/, unchanged.

        They are the evidence of what the recovery removed; losing them hides that.
        """
        moved = p.get("moved_to")
        if not isinstance(moved, str) or not _QUARANTINE_RE.fullmatch(moved):
            self.problem(
                K.MISSING_QUARANTINE,
                f"recovery record names no file inside quarantine/: {moved!r}",
                name,
                e.offset,
                seq,
            )
            return
        try:
            check_real_dir(self.dir / QUARANTINE)
            data = read_regular(self.dir / moved)
        except FileNotFoundError:
            why = "is gone"
        except NotRegularFileError as exc:
            why = exc.what
        except OSError as exc:
            why = f"cannot be read ({exc.strerror})"
        else:
            if len(data) == p.get("length") and hashlib.sha256(data).hexdigest() == p.get("sha256"):
                return
            why = "does not hold the bytes the recovery moved there"
        self.problem(
            K.MISSING_QUARANTINE,
            f"{moved}, where the recovery at seq {seq} moved {p.get('length')} bytes, {why}",
            name,
            e.offset,
            seq,
        )

    def _manifest_record(self, name: str, e: _Entry, p: dict[str, Any], seq: int) -> None:
        # Invariant: the chain's copy of a manifest equals the manifest file (when kept).
        mpath = self.dir / f"{seg_stem(int(p.get('first_seq', -1)))}.manifest.json"
        if mpath.name in self.unsafe:
            return  # already reported
        try:
            held = json.loads(read_regular(mpath))
        except (OSError, ValueError, NotRegularFileError):
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
