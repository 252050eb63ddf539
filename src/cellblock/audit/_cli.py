"""``cellblock audit``: keygen, verify, show, tail, export, rotate, prune."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cellblock.audit._errors import AuditError
from cellblock.audit._format import LineError, decode_line, parse_ts, seg_stem
from cellblock.audit._keys import generate_keypair
from cellblock.audit._log import AuditLog
from cellblock.audit._paths import default_audit_dir, default_private_key, default_public_key
from cellblock.audit._segments import list_segments
from cellblock.audit._verify import VerificationNotPossible, verify
from cellblock.audit._witness import DirectoryWitness


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("audit", help="tamper-evident audit log", description=__doc__)
    p.add_argument(
        "--audit-dir",
        type=Path,
        default=None,
        help="log directory (default: $CELLBLOCK_AUDIT_DIR or the user data dir)",
    )
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    k = asub.add_parser("keygen", help="create an Ed25519 signing key pair (private key 0600)")
    k.add_argument("--private", type=Path, default=None, help="private key path")
    k.add_argument("--public", type=Path, default=None, help="public key path")
    k.set_defaults(func=_keygen)

    v = asub.add_parser("verify", help="verify the whole log (exit 0 intact, 1 problem, 2 error)")
    v.add_argument(
        "--trust-root",
        default=None,
        help="public key file or fingerprint 'ed25519:<hex>' (default: the default public key)",
    )
    v.add_argument("--witness", type=Path, default=None, help="witness directory")
    v.add_argument("--json", action="store_true", help="print a machine-readable report")
    v.set_defaults(func=_verify)

    s = asub.add_parser("show", help="print records")
    s.add_argument("--type", default=None, help="only records of this type")
    s.add_argument("--seq", type=int, default=None, help="only this record")
    s.add_argument("--raw", action="store_true", help="print stored lines unchanged")
    s.set_defaults(func=_show)

    t = asub.add_parser("tail", help="print the last records")
    t.add_argument("-n", type=int, default=10, help="how many (default 10)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    t.add_argument("--raw", action="store_true", help="print stored lines unchanged")
    t.set_defaults(func=_tail)

    e = asub.add_parser("export", help="write stored lines (verifiable JSON Lines) to stdout")
    e.add_argument(
        "--since", required=True, help="ISO time (2026-01-31T12:00Z) or age like 90m, 24h, 7d"
    )
    e.add_argument("--until", default=None, help="ISO time or age")
    e.add_argument("--type", default=None, help="only records of this type")
    e.set_defaults(func=_export)

    for name, helptext, fn in (
        ("rotate", "close the live segment now (sign, compress, manifest)", _rotate),
        ("prune", "delete segments older than the retention period (signed prune record)", _prune),
    ):
        r = asub.add_parser(name, help=helptext)
        r.add_argument("--signing-key", type=Path, default=None, help="private key path")
        r.add_argument("--witness", type=Path, default=None, help="witness directory")
        if name == "prune":
            r.add_argument("--retention-days", type=int, default=30)
        r.set_defaults(func=fn)


def _dir(args: argparse.Namespace) -> Path:
    d: Path | None = args.audit_dir
    return d if d is not None else default_audit_dir()


def _keygen(args: argparse.Namespace) -> int:
    priv = args.private or default_private_key()
    pub = args.public or (
        priv.with_suffix(".pub") if args.private is not None else default_public_key()
    )
    kid = generate_keypair(priv, pub)
    print(f"private key: {priv} (mode 0600; keep it outside every sandbox)")
    print(f"public key:  {pub}")
    print(f"fingerprint: {kid}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    witness = DirectoryWitness(args.witness) if args.witness else None
    trust = args.trust_root if args.trust_root else default_public_key()
    try:
        report = verify(_dir(args), trust_root=trust, witness=witness)
    except (VerificationNotPossible, AuditError, OSError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        else:
            print(f"cellblock: error: verification could not run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for prob in report.problems:
            print(f"PROBLEM {prob}")
        for w in report.warnings:
            print(f"warning {w}")
        state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
        print(
            f"{report.directory}: {state}; {report.records} records, log {report.log_id}, "
            f"{len(report.segments)} segment(s), {len(report.pruned_segments)} pruned"
        )
    return 0 if report.ok else 1


def _iter_lines(directory: Path) -> Iterator[tuple[str, bytes]]:
    import gzip

    segs = list_segments(directory)
    for first in sorted(segs):
        kinds = segs[first]
        if "jsonl" in kinds:
            name = f"{seg_stem(first)}.jsonl"
            data = (directory / name).read_bytes()
        elif "jsonl.gz" in kinds:
            name = f"{seg_stem(first)}.jsonl.gz"
            data = gzip.decompress((directory / name).read_bytes())
        else:
            continue
        for line in data.splitlines(keepends=True):
            yield name, line


def _fmt(line: bytes, raw: bool) -> str:
    if raw:
        return line.decode("utf-8", "replace").rstrip("\n")
    try:
        _, rec = decode_line(line)
    except LineError as exc:
        return f"!! unreadable record ({exc.message})"
    payload = json.dumps(rec["payload"], ensure_ascii=False, separators=(",", ":"))
    return f"{rec['seq']:>8} {rec['ts']} {rec['type']:<16} {payload}"


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        return decode_line(line)[1]
    except LineError:
        return None


def _require(directory: Path) -> None:
    if not directory.is_dir() or not list_segments(directory):
        raise AuditError(f"no audit log in {directory}")


def _show(args: argparse.Namespace) -> int:
    d = _dir(args)
    _require(d)
    for _, line in _iter_lines(d):
        rec = _record(line)
        if args.seq is not None and (rec is None or rec["seq"] != args.seq):
            continue
        if args.type is not None and (rec is None or rec["type"] != args.type):
            continue
        print(_fmt(line, args.raw))
    return 0


def _tail(args: argparse.Namespace) -> int:
    d = _dir(args)
    _require(d)
    lines = [line for _, line in _iter_lines(d)]
    for line in lines[-args.n :] if args.n > 0 else []:
        print(_fmt(line, args.raw), flush=True)
    if not args.follow:
        return 0
    last = _record(lines[-1])["seq"] if lines and _record(lines[-1]) else -1  # type: ignore[index]
    while True:
        time.sleep(0.5)
        for _, line in _iter_lines(d):
            rec = _record(line)
            if rec is not None and rec["seq"] > last:
                print(_fmt(line, args.raw), flush=True)
                last = rec["seq"]


_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _when(text: str) -> float:
    m = _AGE.match(text.strip())
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return time.time() - float(m.group(1)) * mult
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(f"cannot read time {text!r}; use ISO 8601 or an age like 24h") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def _export(args: argparse.Namespace) -> int:
    d = _dir(args)
    _require(d)
    since = _when(args.since)
    until = _when(args.until) if args.until else None
    out = sys.stdout.buffer
    for _, line in _iter_lines(d):
        rec = _record(line)
        if rec is None:
            continue
        t = parse_ts(rec["ts"])
        if t < since or (until is not None and t > until):
            continue
        if args.type is not None and rec["type"] != args.type:
            continue
        out.write(line)
    out.flush()
    return 0


def _open(args: argparse.Namespace, **kw: Any) -> AuditLog:
    d = _dir(args)
    _require(d)
    witness = DirectoryWitness(args.witness) if args.witness else None
    return AuditLog.open(d, signing_key=args.signing_key, witness=witness, **kw)


def _rotate(args: argparse.Namespace) -> int:
    with _open(args) as log:
        name = log.rotate()
    print(f"closed {name}" if name else "nothing to rotate: the live segment is empty")
    return 0


def _prune(args: argparse.Namespace) -> int:
    with _open(args, retention_days=args.retention_days) as log:
        pruned = log.prune()
    for name in pruned:
        print(f"pruned {name}")
    if not pruned:
        print(f"nothing older than {args.retention_days} days")
    return 0
