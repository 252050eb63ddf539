"""Real logs and the edits an attacker would make to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cellblock.audit._format import canonical, decode_line

from ..audit._util import encode


def live_segment(log_dir: Path) -> Path:
    return sorted(log_dir.glob("seg-*.jsonl"))[-1]


def records(log_dir: Path) -> list[dict[str, Any]]:
    return [decode_line(line)[1] for line in live_segment(log_dir).read_bytes().splitlines(True)]


def rewrite_record(log_dir: Path, seq: int, change: dict[str, Any], *, rehash: bool) -> None:
    """Change fields of one record's payload in place.

    ``rehash``: also recompute its stored hash (what an attacker would do so that the line alone
    looks well-formed); the chain and the signed checkpoints still give the edit away.
    """
    path = live_segment(log_dir)
    lines = path.read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines):
        stored, rec = decode_line(line)
        if rec["seq"] != seq:
            continue
        rec["payload"].update(change)
        if rehash:
            lines[i] = encode(rec)[0]
        else:
            envelope = json.loads(line)
            envelope["record"] = rec
            lines[i] = b'{"hash":"' + stored.encode() + b'","record":' + canonical(rec) + b"}\n"
        path.write_bytes(b"".join(lines))
        return
    raise AssertionError(f"no record at seq {seq} in {path}")


def drop_records_from(log_dir: Path, seq: int) -> None:
    """Cut the live segment before the record at ``seq`` (a truncation)."""
    path = live_segment(log_dir)
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["record"]["seq"] < seq]
    path.write_bytes(b"".join(kept))
