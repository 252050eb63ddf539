"""The verifier: proves a log directory is complete, unaltered and signed by the trusted keys.

It never re-serialises: each record's hash is computed over the stored bytes. Each check below
states the invariant it enforces and reports a :class:`Problem` named after what failed.

The checks live in ``_verify_*`` modules, layered on one another: the problem model and state
(``_verify_base``), the key chain (``_verify_keys``), the record walk with its fast path
(``_verify_records``), closed segments and manifests (``_verify_segments``) and the witness
(``_verify_witness``). This module orders them and is the public entry point.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cellblock.audit._errors import AuditKeyError
from cellblock.audit._format import parse_ts, seg_stem
from cellblock.audit._keys import TrustRoot, trusted_key_id
from cellblock.audit._segments import list_segments
from cellblock.audit._verify_base import (
    TIER_SUMMARY,
    TIER_WITNESS,
    K,
    VerificationNotPossible,
)
from cellblock.audit._verify_witness import _WitnessChecks
from cellblock.audit.interface import VerificationReport, Witness

__all__ = ["VerificationNotPossible", "verify"]


class _Verifier(_WitnessChecks):
    def run(self) -> VerificationReport:
        segs = list_segments(self.dir)
        if not segs:
            known = self.witness.log_ids() if self.witness is not None else []
            if not known:
                raise VerificationNotPossible(f"{self.dir} holds no audit log segments")
            # Invariant: a log the witness has seen cannot vanish.
            self.problem(
                K.TRUNCATION,
                f"every segment is gone; the witness knows {known[0]}",
                f"{seg_stem(0)}.jsonl",
                0,
                0,
                tier=TIER_WITNESS,
            )
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
            self.problem(
                K.MISSING_SEGMENT,
                "no live segment follows the last closed segment",
                f"{seg_stem(self.s.expected)}.jsonl",
                0,
                self.s.expected,
            )
        for f, m in missing:
            name = f"{seg_stem(f)}.jsonl.gz"
            if self.s.pruned.get(name) == m.get("gz_sha256"):
                self.pruned_names.append(name)
            else:
                self.problem(
                    K.MISSING_SEGMENT,
                    "segment file is gone and no signed prune record covers it",
                    name,
                    0,
                    m.get("first_seq"),
                )
        self._final_checks()
        return self._report()

    def _final_checks(self) -> None:
        s = self.s
        if s.last_cp is not None and s.expected - s.last_cp - 1 > s.every:
            where = s.uncovered_from[:2] if s.uncovered_from is not None else s.end
            self.problem(
                K.MISSING_CHECKPOINT,
                f"{s.expected - s.last_cp - 1} records after the last checkpoint (seq "
                f"{s.last_cp}), at most {s.every} allowed",
                None if where is None else where[0],
                None if where is None else where[1],
                s.last_cp + 1,
            )
        # Before the trust-root summary: the witness may explain it (a rollback to before a key
        # rotation leaves a log that the current trust root never signed).
        self._witness_checks()
        # Invariant: the chain's keys descend from the trust root.
        genesis = self.segments[0] if self.segments else None
        if self.trusted not in s.chain_keys:
            keys = ", ".join(k[:24] + "…" for k in s.chain_keys) or "no key"
            self.problem(
                K.UNKNOWN_KEY,
                f"the log is signed by {keys}, none of which is the trust root "
                f"{self.trusted[:24]}…",
                genesis,
                None if genesis is None else 0,
                None if genesis is None else 0,
                tier=TIER_SUMMARY,
            )
        elif (
            self.trusted != (s.chain_keys[0] if s.chain_keys else None)
            and self.trusted not in s.signers
        ):
            self.problem(
                K.UNKNOWN_KEY,
                "the trusted key never signed a checkpoint in this log",
                genesis,
                None if genesis is None else 0,
                None if genesis is None else 0,
                tier=TIER_SUMMARY,
            )
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
