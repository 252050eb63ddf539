"""Scanning a segment's bytes: the state the writer needs to continue a chain."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellblock.audit._format import (
    SEG_RE,
    T_CHECKPOINT,
    T_GENESIS,
    T_MANIFEST,
    LineError,
    decode_line,
    parse_ts,
)


@dataclass
class ChainState:
    """Where a chain stands after the last valid record the writer has seen."""

    next_seq: int
    head: str | None  # None: first record of a non-genesis segment, prev not yet known
    log_id: str | None = None
    key_id: str | None = None
    key_pub: str | None = None
    last_cp_seq: int = -1
    last_cp_time: float = 0.0
    last_cp_every: int = 1000
    seg_first_prev: str | None = None
    seg_start_key: dict[str, str] | None = None
    seg_key_events: list[dict[str, Any]] = field(default_factory=list)
    seg_start_time: float | None = None
    seg_first_ts: str | None = None
    last_type: str | None = None
    last_payload: dict[str, Any] | None = None

    def apply(self, h: str, rec: dict[str, Any]) -> None:
        """Advance over one record whose link and seq were already checked."""
        p = rec["payload"]
        t = rec["type"]
        if self.seg_first_prev is None:
            self.seg_first_prev = rec["prev"]
            self.seg_start_time = parse_ts(rec["ts"])
            self.seg_first_ts = rec["ts"]
        if self.log_id is None:
            self.log_id = rec["log"]
        if t == T_GENESIS:
            self.key_id, self.key_pub = p["key"], p["pub"]
            self.seg_start_key = {"id": p["key"], "pub": p["pub"]}
            self.last_cp_every = int(p["every"])
        elif t == T_CHECKPOINT:
            self.last_cp_seq = rec["seq"]
            self.last_cp_time = parse_ts(p["ts"])
            self.last_cp_every = int(p["every"])
            nk = p.get("next_key")
            if nk is not None:
                self.seg_key_events.append(p)
                self.key_id, self.key_pub = nk["id"], nk["pub"]
        elif t == T_MANIFEST and rec["seq"] == p.get("last_seq", -2) + 1:
            # First record of a segment: carries the state at the end of the previous one.
            ek = p["end_key"]
            self.key_id, self.key_pub = ek["id"], ek["pub"]
            self.seg_start_key = {"id": ek["id"], "pub": ek["pub"]}
            self.last_cp_seq = int(p["last_seq"])
            self.last_cp_time = parse_ts(p["last_ts"])
            self.last_cp_every = int(p["every"])
        self.next_seq = rec["seq"] + 1
        self.head = h
        self.last_type = t
        self.last_payload = p if isinstance(p, dict) else None


@dataclass
class ScanResult:
    valid_end: int  # offset just past the last good record
    error: str | None  # why scanning stopped before the end of the data, if it did
    later_checkpoint: bool  # a valid checkpoint line exists after the bad bytes


def scan(data: bytes, base: int, state: ChainState) -> ScanResult:
    """Walk complete records in ``data`` (which starts at file offset ``base``), updating state."""
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return _stop(data, base, pos, "torn record at end of file (no newline)")
        line = data[pos : nl + 1]
        try:
            h, rec = decode_line(line)
            if state.log_id is not None and rec["log"] != state.log_id:
                raise LineError("malformed", "record belongs to another log")
            if rec["seq"] != state.next_seq:
                raise LineError("seq", f"seq {rec['seq']} where {state.next_seq} was expected")
            if state.head is not None and rec["prev"] != state.head:
                raise LineError("chain", "record does not link to the previous one")
            state.apply(h, rec)
        except (LineError, KeyError, TypeError, ValueError) as exc:
            msg = exc.message if isinstance(exc, LineError) else f"bad field {exc}"
            return _stop(data, base, pos, msg)
        pos = nl + 1
    return ScanResult(base + pos, None, False)


def _stop(data: bytes, base: int, pos: int, why: str) -> ScanResult:
    later_cp = False
    for piece in data[pos:].split(b"\n")[1:]:
        try:
            _, rec = decode_line(piece + b"\n")
        except LineError:
            continue
        if rec["type"] == T_CHECKPOINT:
            later_cp = True
            break
    return ScanResult(base + pos, f"{why} at offset {base + pos}", later_cp)


def list_segments(directory: Path) -> dict[int, set[str]]:
    """first seq -> the kinds present ('jsonl', 'jsonl.gz', 'manifest.json')."""
    out: dict[int, set[str]] = {}
    for name in os.listdir(directory):
        m = SEG_RE.match(name)
        if m:
            out.setdefault(int(m.group(1)), set()).add(m.group(2))
    return out
