"""Helpers shared by the audit tests: real logs, and the tools an attacker would use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellblock.audit import AuditLog, DirectoryWitness, VerificationReport, verify
from cellblock.audit._format import build_body, build_line, canonical, decode_line, seg_stem


@dataclass
class Env:
    root: Path
    log_dir: Path
    priv: Path
    pub: Path
    witness: DirectoryWitness

    def open(self, **kw: Any) -> AuditLog:
        kw.setdefault("signing_key", self.priv)
        kw.setdefault("witness", self.witness)
        return AuditLog.open(self.log_dir, **kw)

    def verify(self, *, witness: bool = True, trust: Any = None) -> VerificationReport:
        return verify(
            self.log_dir,
            trust_root=self.pub if trust is None else trust,
            witness=self.witness if witness else None,
        )

    def live(self) -> Path:
        return sorted(self.log_dir.glob("seg-*.jsonl"))[-1]

    def fill(self, n: int, **kw: Any) -> None:
        kw.setdefault("checkpoint_every", 10)
        with self.open(**kw) as log:
            for i in range(n):
                log.append("exec", {"i": i, "who": "alice", "code": f"print({i})"})


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def rec_of(line: bytes) -> dict[str, Any]:
    return decode_line(line)[1]


def encode(rec: dict[str, Any]) -> tuple[bytes, str]:
    """Serialise a record dict the way the writer does (an attacker can do this too)."""
    body = build_body(
        rec["log"],
        canonical(rec["payload"]),
        rec["prev"],
        rec["seq"],
        rec["ts"],
        canonical(rec["type"]),
    )
    return build_line(body)


def rechain(lines: list[bytes], start: int, *, renumber: bool = False) -> list[bytes]:
    """Re-link (and optionally renumber) every record from ``start`` on, with valid hashes."""
    out = list(lines[:start])
    if start > 0:
        prev = decode_line(out[-1])[0]
        seq = rec_of(out[-1])["seq"] + 1
    else:
        prev, seq = "0" * 64, 0
    for line in lines[start:]:
        rec = json.loads(line)["record"]
        rec["prev"] = prev
        if renumber:
            rec["seq"] = seq
        new, prev = encode(rec)
        out.append(new)
        seq = rec["seq"] + 1
    return out


def kinds(report: VerificationReport) -> set[str]:
    return {str(p.kind) for p in report.problems}


__all__ = ["Env", "kinds", "read_lines", "rec_of", "rechain", "seg_stem", "write_lines"]
