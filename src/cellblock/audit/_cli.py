"""``cellblock audit``: keygen, verify(-fleet), show, tail, export, rotate, prune, rotate-key."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellblock.audit._errors import AuditError, AuditKeyError
from cellblock.audit._format import LineError, decode_line, parse_ts, seg_stem
from cellblock.audit._fsutil import fsync_dir, read_regular
from cellblock.audit._keys import destroy_key_file, generate_keypair
from cellblock.audit._log import AuditLog
from cellblock.audit._paths import default_audit_dir, default_private_key, default_public_key
from cellblock.audit._segments import list_segments
from cellblock.audit._verify import VerificationNotPossible, verify
from cellblock.audit._witness import DirectoryWitness
from cellblock.audit.interface import VerificationReport

if TYPE_CHECKING:
    from cellblock.fleet.interface import FleetReport  # the fleet builds on the audit log


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("audit", help="tamper-evident audit log", description=__doc__)
    p.add_argument("--audit-dir", type=Path, default=None, help=_AUDIT_DIR_HELP)
    # The same option after the subcommand, as people type it; SUPPRESS keeps the value given
    # before the subcommand when it is not repeated after it.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--audit-dir", type=Path, default=argparse.SUPPRESS, help=_AUDIT_DIR_HELP)
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, helptext: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = asub.add_parser(name, help=helptext, parents=[shared])
        return sp

    k = add("keygen", "create an Ed25519 signing key pair (private key 0600)")
    k.add_argument("--private", type=Path, default=None, help="private key path")
    k.add_argument("--public", type=Path, default=None, help="public key path")
    k.add_argument("--json", action="store_true", help="print a machine-readable result")
    k.set_defaults(func=_keygen)

    v = add("verify", "verify the whole log (exit 0 intact, 1 problem, 2 error)")
    v.add_argument(
        "--trust-root",
        default=None,
        help="public key file or fingerprint 'ed25519:<hex>' (default: the default public key)",
    )
    v.add_argument("--witness", type=Path, default=None, help="witness directory")
    v.add_argument("--json", action="store_true", help="print a machine-readable report")
    v.set_defaults(func=_verify)

    vf = add(
        "verify-fleet",
        "verify a fleet: the dispatcher's log (--audit-dir), the signed node list, every node's "
        "log, and that each receipt is in the right node's log (exit 0 intact, 1 problem, 2 error)",
    )
    vf.add_argument("--node-list", type=Path, required=True, help="the signed node list (JSON)")
    vf.add_argument(
        "--node-log",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a node's log directory (repeat for each node)",
    )
    vf.add_argument(
        "--trust-root",
        default=None,
        help="the dispatcher's public key file or fingerprint (default: the default public key)",
    )
    vf.add_argument("--json", action="store_true", help="print a machine-readable report")
    vf.set_defaults(func=_verify_fleet)

    s = add("show", "print records")
    s.add_argument("--type", default=None, help="only records of this type")
    s.add_argument("--seq", type=int, default=None, help="only this record")
    s.add_argument("--raw", action="store_true", help="print stored lines unchanged")
    s.set_defaults(func=_show)

    t = add("tail", "print the last records")
    t.add_argument("-n", type=int, default=10, help="how many (default 10)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    t.add_argument("--raw", action="store_true", help="print stored lines unchanged")
    t.set_defaults(func=_tail)

    e = add("export", "write stored lines (verifiable JSON Lines) to stdout")
    e.add_argument(
        "--since", required=True, help="ISO time (2026-01-31T12:00Z) or age like 90m, 24h, 7d"
    )
    e.add_argument("--until", default=None, help="ISO time or age")
    e.add_argument("--type", default=None, help="only records of this type")
    e.set_defaults(func=_export)

    for name, helptext, fn in (
        ("rotate", "close the live segment now (sign, compress, manifest)", _rotate),
        ("prune", "delete segments older than the retention period (signed prune record)", _prune),
        ("rotate-key", "switch the log to a new signing key, announced under the old one", _rekey),
    ):
        r = add(name, helptext)
        r.add_argument("--signing-key", type=Path, default=None, help="private key path")
        r.add_argument("--witness", type=Path, default=None, help="witness directory")
        r.add_argument("--json", action="store_true", help="print a machine-readable result")
        if name == "prune":
            r.add_argument("--retention-days", type=int, default=30)
        if name == "rotate-key":
            r.add_argument(
                "--new-key",
                type=Path,
                default=None,
                help="an existing private key to switch to (default: make a new pair and put it "
                "in place of the current one)",
            )
            r.add_argument(
                "--public",
                type=Path,
                default=None,
                help="public key file to replace with the new one (default: the signing key's)",
            )
            r.add_argument(
                "--keep-old", action="store_true", help="do not destroy the old private key file"
            )
        r.set_defaults(func=fn)


_AUDIT_DIR_HELP = "log directory (default: $CELLBLOCK_AUDIT_DIR or the user data dir)"


def _dir(args: argparse.Namespace) -> Path:
    d: Path | None = args.audit_dir
    return d if d is not None else default_audit_dir()


def _keygen(args: argparse.Namespace) -> int:
    priv = args.private or default_private_key()
    pub = args.public or (
        priv.with_suffix(".pub") if args.private is not None else default_public_key()
    )
    try:
        kid = generate_keypair(priv, pub)
    except AuditError as exc:
        return _json_error(args, exc)
    if args.json:
        print(
            json.dumps({"ok": True, "private_key": str(priv), "public_key": str(pub), "key": kid})
        )
        return 0
    print(f"private key: {priv} (mode 0600; keep it outside every sandbox)")
    print(f"public key:  {pub}")
    print(f"fingerprint: {kid}")
    return 0


def _json_error(args: argparse.Namespace, exc: AuditError) -> int:
    """With --json an error is a JSON object on stdout too (and the same exit status)."""
    if not getattr(args, "json", False):
        raise exc
    print(json.dumps({"ok": False, "error": str(exc)}))
    return exc.exit_code


def _cannot_verify(args: argparse.Namespace, message: str) -> int:
    """Verification could not run at all: say why (JSON with --json) and exit 2."""
    if args.json:
        print(json.dumps({"ok": False, "error": message}))
    else:
        print(f"cellblock: error: verification could not run: {message}", file=sys.stderr)
    return 2


def _show_report(
    args: argparse.Namespace,
    report: VerificationReport | FleetReport,
    subject: str,
    details: str,
    *,
    warnings: Iterable[object] = (),
) -> int:
    """Print a verification report (JSON with --json); exit 0 when intact, 1 with problems."""
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for prob in report.problems:
            print(f"PROBLEM {prob}")
        for w in warnings:
            print(f"warning {w}")
        state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"{subject}: {state}; {details}")
    return 0 if report.ok else 1


def _verify(args: argparse.Namespace) -> int:
    witness = DirectoryWitness(args.witness) if args.witness else None
    trust = args.trust_root if args.trust_root else default_public_key()
    try:
        report = verify(_dir(args), trust_root=trust, witness=witness)
    except (VerificationNotPossible, AuditError, OSError) as exc:
        return _cannot_verify(args, str(exc))
    return _show_report(
        args,
        report,
        str(report.directory),
        f"{report.records} records, log {report.log_id}, "
        f"{len(report.segments)} segment(s), {len(report.pruned_segments)} pruned",
        warnings=report.warnings,
    )


def _verify_fleet(args: argparse.Namespace) -> int:
    from cellblock.fleet import verify_fleet  # the fleet builds on the audit log, not the reverse

    logs: dict[str, Path] = {}
    for item in args.node_log:
        name, sep, directory = item.partition("=")
        if not sep or not name or not directory:
            return _cannot_verify(args, f"--node-log takes NAME=DIR, got {item!r}")
        logs[name] = Path(directory)
    trust = args.trust_root if args.trust_root else default_public_key()
    try:
        report = verify_fleet(
            _dir(args), trust_root=trust, node_list=args.node_list, node_logs=logs
        )
    except (VerificationNotPossible, AuditError, OSError) as exc:
        return _cannot_verify(args, str(exc))
    return _show_report(
        args,
        report,
        f"fleet of {len(report.nodes)} node(s), dispatcher log {report.dispatcher_log_id}",
        f"{report.receipts} receipt(s) checked",
    )


def _iter_lines(directory: Path) -> Iterator[tuple[str, bytes]]:
    import gzip

    segs = list_segments(directory)
    for first in sorted(segs):
        kinds = segs[first]
        if "jsonl" in kinds:
            name = f"{seg_stem(first)}.jsonl"
            data = read_regular(directory / name)
        elif "jsonl.gz" in kinds:
            name = f"{seg_stem(first)}.jsonl.gz"
            data = gzip.decompress(read_regular(directory / name))
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


def _open(args: argparse.Namespace, signing_key: Path | None = None, **kw: Any) -> AuditLog:
    d = _dir(args)
    _require(d)
    witness = DirectoryWitness(args.witness) if args.witness else None
    key = signing_key if signing_key is not None else args.signing_key
    return AuditLog.open(d, signing_key=key, witness=witness, **kw)


def _rotate(args: argparse.Namespace) -> int:
    try:
        with _open(args) as log:
            name = log.rotate()
    except AuditError as exc:
        return _json_error(args, exc)
    if args.json:
        print(json.dumps({"ok": True, "closed": name}))
    else:
        print(f"closed {name}" if name else "nothing to rotate: the live segment is empty")
    return 0


def _prune(args: argparse.Namespace) -> int:
    try:
        with _open(args, retention_days=args.retention_days) as log:
            pruned = log.prune()
    except AuditError as exc:
        return _json_error(args, exc)
    if args.json:
        print(json.dumps({"ok": True, "pruned": pruned, "retention_days": args.retention_days}))
        return 0
    for name in pruned:
        print(f"pruned {name}")
    if not pruned:
        print(f"nothing older than {args.retention_days} days")
    return 0


def _rekey(args: argparse.Namespace) -> int:
    try:
        result = _rotate_key(args)
    except AuditError as exc:
        return _json_error(args, exc)
    if args.json:
        print(json.dumps({"ok": True, **result}))
        return 0
    old = result["old_key"] or "(the key an interrupted earlier run replaced)"
    print(f"log {result['log_id']}: signing key {old} -> {result['new_key']}")
    print(f"private key: {result['private_key']} (mode 0600)")
    if result["public_key"] is not None:
        print(f"public key:  {result['public_key']}")
    print(
        "the old private key was destroyed"
        if result["old_key_destroyed"]
        else "the old private key was kept: destroy it yourself once it is no longer needed"
    )
    return 0


def _rotate_key(args: argparse.Namespace) -> dict[str, Any]:
    """Announce a new key under the old one; by default also put the new pair in the old's place.

    In place: the new pair is made beside the old as ``<key>.next``/``<pub>.next``, announced,
    then the old private key is overwritten and unlinked and the new files renamed over the old
    names. If that is interrupted, running the command again finishes it.
    """
    key = args.signing_key or default_private_key()
    if args.new_key is not None:
        with _open(args, signing_key=key) as log:
            prev_id = log.key_id
            new_id = log.rotate_key(args.new_key, destroy_old=not args.keep_old)
            log_id = log.log_id
        return {
            "log_id": log_id,
            "old_key": prev_id,
            "new_key": new_id,
            "private_key": str(args.new_key),
            "public_key": None,
            "old_key_destroyed": not args.keep_old,
            "resumed": False,
        }
    pub = args.public or (
        default_public_key() if args.signing_key is None else key.with_suffix(".pub")
    )
    nxt, pub_nxt = key.with_name(key.name + ".next"), pub.with_name(pub.name + ".next")
    old_id: str | None = None
    resumed = False
    if nxt.exists():
        # An earlier run was interrupted: finish it if its new key already took over the log.
        try:
            with _open(args, signing_key=nxt) as log:
                new_id, log_id = log.key_id, log.log_id
            resumed = True
        except AuditKeyError:
            nxt.unlink()  # never announced, never signed anything
            pub_nxt.unlink(missing_ok=True)
    if not resumed:
        if pub_nxt.exists():
            pub_nxt.unlink()
        generate_keypair(nxt, pub_nxt)
        with _open(args, signing_key=key) as log:
            old_id, log_id = log.key_id, log.log_id
            new_id = log.rotate_key(nxt, destroy_old=False)
    destroyed = False
    try:
        if not args.keep_old and key.exists():
            destroy_key_file(key)
            destroyed = True
        if args.keep_old and key.exists():
            os.replace(key, key.with_name(key.name + ".old"))
        os.replace(nxt, key)
        os.replace(pub_nxt, pub)
        fsync_dir(key.parent)
        if pub.parent != key.parent:
            fsync_dir(pub.parent)
    except OSError as exc:
        raise AuditKeyError(
            f"the log now uses the key in {nxt}, but it could not be moved into place "
            f"({exc.strerror}); run 'cellblock audit rotate-key' again to finish"
        ) from None
    return {
        "log_id": log_id,
        "old_key": old_id,
        "new_key": new_id,
        "private_key": str(key),
        "public_key": str(pub),
        "old_key_destroyed": destroyed,
        "resumed": resumed,
    }
