"""Verifier checks against the witness: the log still holds what the witness saw."""

from __future__ import annotations

import json

from cellblock.audit._errors import WitnessError
from cellblock.audit._format import T_CHECKPOINT, LineError, parse_body, seg_stem, split_line
from cellblock.audit._fsutil import NotRegularFileError, open_regular, read_regular
from cellblock.audit._keys import check_signature
from cellblock.audit._verify_base import K
from cellblock.audit._verify_segments import _SegmentChecks


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
