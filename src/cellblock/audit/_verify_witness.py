"""Verifier checks against the witness: the log still holds what the witness saw."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from cellblock.audit._errors import WitnessError
from cellblock.audit._format import (
    T_CHECKPOINT,
    LineError,
    parse_body,
    parse_ts,
    seg_stem,
    split_line,
)
from cellblock.audit._fsutil import NotRegularFileError, open_regular, read_regular
from cellblock.audit._keys import check_signature
from cellblock.audit._verify_base import TIER_WITNESS, K
from cellblock.audit._verify_records import _QUARANTINE_RE
from cellblock.audit._verify_segments import _SegmentChecks
from cellblock.audit.interface import Checkpoint


class _WitnessChecks(_SegmentChecks):
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
                    first = min([*closed, *([] if live is None else [live])])
                    name = f"{seg_stem(first)}.jsonl" + ("" if first == live else ".gz")
                    self.problem(
                        K.FORK,
                        f"the witness knows log(s) {', '.join(others)} but not this log "
                        f"{log_id}: the log was replaced",
                        name,
                        0,
                        first,
                        tier=TIER_WITNESS,
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
                m = json.loads(read_regular(self.dir / f"{seg_stem(f)}.manifest.json"))
                return str(m["log"])
            except (OSError, ValueError, KeyError, TypeError, NotRegularFileError):
                continue
        if live is not None:
            try:
                with open(open_regular(self.dir / f"{seg_stem(live)}.jsonl"), "rb") as fh:
                    _, body = split_line(fh.readline())
                return str(parse_body(body)["log"])
            except (OSError, LineError, NotRegularFileError):
                return None
        return None

    def _witness_checks(self) -> None:
        w, s = self.witnessed, self.s
        if w is None:
            return
        first = self.segments[0] if self.segments else None
        if w.log_id != s.log_id:
            self.problem(
                K.FORK,
                "witnessed checkpoint belongs to another log",
                first,
                0,
                0,
                tier=TIER_WITNESS,
            )
            return
        short = s.expected < w.size + 1
        # Invariant: the witnessed checkpoint is signed by a key of this log's chain. A log cut
        # or rolled back to before a key rotation cannot hold the later key: that is then the
        # rollback (reported below), not a foreign key.
        if w.key_id in s.chain_keys:
            pub = s.pubs.get(w.key_id)
            why = "key unavailable" if pub is None else check_signature(pub, w.payload)
            if why:
                self.problem(
                    K.BAD_SIGNATURE, f"witnessed checkpoint: {why}", "witness", None, w.size
                )
                return
        elif not short:
            self.problem(
                K.UNKNOWN_KEY,
                "witnessed checkpoint signed by a key outside the chain",
                "witness",
                None,
                w.size,
            )
        # Invariant: witnessed records are never cut, not even by crash recovery (the writer
        # refuses to; a writer opened without the witness cannot know and leaves this record).
        cut = self._cut_by_recovery(w)
        if cut is not None:
            seq, name, offset, info, _ = cut
            self.problem(
                K.TRUNCATION,
                f"records the witness saw (up to seq {w.size}) were cut off at offset "
                f"{info.get('offset')} of {info.get('segment')} by the crash recovery recorded "
                f"here, run without the witness; the cut bytes are in {info.get('moved_to')}",
                name,
                offset,
                seq,
                tier=TIER_WITNESS,
            )
            return
        # Invariant: the log contains the witnessed head, at the witnessed size.
        if short:
            # A consistent, cleanly checkpointed older state is a rollback; anything else is a cut.
            clean = s.last_type == T_CHECKPOINT and not self.torn and not self.problems
            kind = K.ROLLBACK if clean else K.TRUNCATION
            what = (
                "an older copy of the log"
                if kind == K.ROLLBACK
                else "the tail of the log is missing"
            )
            end = s.end
            self.problem(
                kind,
                f"log has {s.expected} records but the witness saw {w.size + 1} (a checkpoint "
                f"at seq {w.size}): {what}",
                None if end is None else end[0],
                None if end is None else end[1],
                s.expected,
                tier=TIER_WITNESS,
            )
        elif s.witness_hash is not None and s.witness_hash != w.head:
            at = s.witness_at.get(w.size - 1)
            self.problem(
                K.FORK,
                f"record {w.size - 1} differs from the witnessed head",
                None if at is None else at[0],
                None if at is None else at[1],
                w.size - 1,
                tier=TIER_WITNESS,
            )
        elif s.witness_hash is not None and s.witness_record != w.payload:
            # Invariant: the witnessed checkpoint record itself is in the log, unchanged.
            at = s.witness_at.get(w.size)
            self.problem(
                K.FORK,
                f"record {w.size} is not the witnessed checkpoint",
                None if at is None else at[0],
                None if at is None else at[1],
                w.size,
                tier=TIER_WITNESS,
            )

    def _cut_by_recovery(self, w: Checkpoint) -> tuple[int, str, int, dict[str, Any], str] | None:
        """The recovery record that removed witnessed records, if one provably did.

        Proof: it sits at or before the witnessed checkpoint's seq and was written after that
        checkpoint (so after the witness saw it), or the bytes it moved to quarantine hold the
        witnessed head. An older recovery that the witness has since moved past is not blamed.
        """
        s = self.s
        for r in s.recovered[::-1]:
            seq, info, ts = r[0], r[3], r[4]
            if seq > w.size:
                continue
            with contextlib.suppress(ValueError):
                if parse_ts(ts) >= parse_ts(w.ts):
                    return r
            moved = info.get("moved_to")
            if isinstance(moved, str) and _QUARANTINE_RE.fullmatch(moved):
                with contextlib.suppress(OSError, NotRegularFileError):
                    if w.head.encode() in read_regular(self.dir / moved):
                        return r
        return None
