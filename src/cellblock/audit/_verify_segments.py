"""Verifier checks on closed segments: manifests, signatures, tiling, digests, copies."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cellblock.audit._errors import AuditKeyError
from cellblock.audit._format import T_CHECKPOINT, canonical, seg_stem
from cellblock.audit._keys import check_signature, key_id, public_from_hex
from cellblock.audit._verify_base import K
from cellblock.audit._verify_records import _RecordWalk


class _SegmentChecks(_RecordWalk):
    def _read_manifest(self, f: int, kinds: set[str]) -> dict[str, Any] | None:
        name = f"{seg_stem(f)}.manifest.json"
        if "manifest.json" not in kinds:
            return None
        raw = self.read(name, f)
        if raw is None:
            return None
        try:
            m = json.loads(raw)
            if not isinstance(m, dict):
                raise ValueError("not an object")
            # Invariant: a manifest file is exactly its canonical JSON (no silent edits).
            if raw != canonical(m) + b"\n":
                raise ValueError("file is not in canonical form")
            _check_manifest_schema(m)
            return m
        except (OSError, ValueError) as exc:
            self.problem(K.MANIFEST_MISMATCH, f"manifest unreadable: {exc}", name, 0, f)
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
            gz_bytes = self.read(gz_name, f)
        if m is None:
            # Invariant: every closed segment has a signed manifest.
            if gz_bytes is not None:
                dig = hashlib.sha256(gz_bytes).hexdigest()
                if dig in digests and digests[dig] != f:
                    self.problem(
                        K.DUPLICATE, f"copy of segment {seg_stem(digests[dig])}", gz_name, 0, f
                    )
                    return
                self.problem(K.MANIFEST_MISMATCH, "closed segment has no manifest", gz_name, 0, f)
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
                0,
                f,
            )
        if s.log_id is not None and m["log"] != s.log_id:
            self.problem(K.FORK, f"manifest belongs to log {m['log']}", mname, 0, f)
        s.log_id = s.log_id or str(m["log"])
        # Invariant: a manifest is signed by the key in force at the end of its segment.
        end_key = m["end_key"]
        try:
            end_pub = public_from_hex(str(end_key["pub"]))
            if key_id(end_pub) != end_key["id"] or m["key"] != end_key["id"]:
                raise AuditKeyError("manifest key id does not match its public key")
            why = check_signature(end_pub, m)
            if why:
                self.problem(K.BAD_SIGNATURE, f"manifest: {why}", mname, 0, f)
        except (AuditKeyError, KeyError, TypeError) as exc:
            self.problem(K.BAD_SIGNATURE, f"manifest key unusable: {exc}", mname, 0, f)
        # Invariant: segments tile the seq space with no gap or overlap, each linking to the last.
        if f > s.expected:
            self.problem(
                K.MISSING_SEGMENT,
                f"records {s.expected}..{f - 1} are missing",
                gz_name,
                0,
                s.expected,
            )
        elif f < s.expected:
            self.problem(K.DUPLICATE, f"segment starts at seq {f}, already covered", gz_name, 0, f)
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
                0,
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
                    hashlib.sha256(self.read(f"{seg_stem(o)}.jsonl.gz") or b"").hexdigest()
                    == m["gz_sha256"]
                    for o in digests.values()
                    if o != f and (self.dir / f"{seg_stem(o)}.jsonl.gz").exists()
                )
                kind = K.REORDERING if own_ok else K.DUPLICATE
                self.problem(
                    kind, f"file holds the content of segment {seg_stem(other)}", gz_name, 0, f
                )
                self._skip_with_manifest(m, mname)
                return
            self.problem(
                K.MANIFEST_MISMATCH,
                "compressed file digest differs from manifest",
                gz_name,
                0,
                f,
            )
        self._walk_bytes(gz_name, gz_bytes, compressed=True)
        # Invariant: the records end exactly where the signed manifest says.
        if s.expected - 1 != m["last_seq"] or s.prev != m["last_hash"]:
            self.problem(
                K.MANIFEST_MISMATCH,
                f"segment ends at seq {s.expected - 1}, manifest says {m['last_seq']}",
                gz_name,
                0,
                m["last_seq"],
            )
            self._skip_with_manifest(m, mname, walked=True)
        if s.key != m["end_key"]["id"]:
            self.problem(
                K.UNKNOWN_KEY,
                "manifest end key differs from the chain's key",
                mname,
                0,
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
                    0,
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
            s.witness_at[s.witness_seq] = (mname, 0)


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
