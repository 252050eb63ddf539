"""Fleet verification: every log verifies, and every receipt is in the right node's log.

Inputs: the dispatcher's log and its trusted key, the signed node list (which key and which log
id belong to which node) and each node's log directory. Needs no Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellblock.audit import Receipt, ReceiptError, VerificationNotPossible, verify
from cellblock.audit._format import LineError, decode_line
from cellblock.audit._keys import TrustRoot, trusted_key_id
from cellblock.audit._receipts import check_receipt, index_records, stored_lines
from cellblock.audit.interface import VerificationReport
from cellblock.fleet._nodelist import (
    NodeListError,
    check_node_list,
    node_list_digest,
    read_node_list,
)
from cellblock.fleet.interface import FleetProblem, FleetReport

RECEIPT_TYPES = ("fleet.receipt", "fleet.error")
NODES_TYPE = "fleet.nodes"


def _dispatcher_records(directory: Path) -> list[dict[str, Any]]:
    """The fleet records of the dispatcher's log (those whose bytes match their hash)."""
    out = []
    for line in stored_lines(directory):
        try:
            _, rec = decode_line(line)
        except LineError:
            continue
        if rec["type"].startswith("fleet.") and isinstance(rec["payload"], dict):
            out.append(rec)
    return out


def _first(report: VerificationReport) -> str:
    more = f" and {len(report.problems) - 1} more" if len(report.problems) > 1 else ""
    return f"{report.problems[0]}{more}"


def verify_fleet(
    dispatcher_log: Path,
    *,
    trust_root: TrustRoot,
    node_list: Path | Mapping[str, Any],
    node_logs: Mapping[str, Path],
) -> FleetReport:
    """Verify the dispatcher's log, the node list and every node log, then every receipt.

    ``trust_root`` is the dispatcher's public key (file, fingerprint or key); the node list must
    be signed by it, and gives each node's key, which is the trust root of that node's log.
    ``node_logs`` maps node names to log directories. Raises VerificationNotPossible (exit 2)
    when the dispatcher's log or the node list cannot be read at all.
    """
    dispatcher_log = Path(dispatcher_log)
    try:
        trusted = trusted_key_id(trust_root)
    except Exception as exc:
        raise VerificationNotPossible(f"cannot use trust root: {exc}") from None
    try:
        signed = dict(node_list) if isinstance(node_list, Mapping) else read_node_list(node_list)
    except NodeListError as exc:
        raise VerificationNotPossible(str(exc)) from None
    problems: list[FleetProblem] = []

    dreport = verify(dispatcher_log, trust_root=trusted)
    if not dreport.ok:
        problems.append(
            FleetProblem("dispatcher_log_failed", f"the dispatcher's log: {_first(dreport)}")
        )

    listed: dict[str, dict[str, Any]] = {}
    why = check_node_list(signed, trusted)
    if why:
        problems.append(FleetProblem("node_list_invalid", "the node list: " + "; ".join(why)))
    else:
        listed = {n["name"]: n for n in signed["nodes"]}
        if dreport.log_id is not None and signed.get("fleet_log_id") != dreport.log_id:
            problems.append(
                FleetProblem(
                    "node_list_mismatch",
                    f"the node list was signed for dispatcher log {signed.get('fleet_log_id')}, "
                    f"this is log {dreport.log_id}",
                )
            )
    records = _dispatcher_records(dispatcher_log)
    digest = node_list_digest(signed)
    if listed and not any(
        r["type"] == NODES_TYPE and r["payload"].get("node_list_sha256") == digest for r in records
    ):
        problems.append(
            FleetProblem(
                "node_list_mismatch",
                "the node list's SHA-256 is not recorded in the dispatcher's log (fleet.nodes)",
            )
        )
    by_log = {n["log_id"]: name for name, n in listed.items()}

    # the receipts, grouped by the node the dispatcher says ran them
    wanted: dict[str, list[tuple[dict[str, Any], Receipt]]] = {}
    count = 0
    for rec in records:
        if rec["type"] not in RECEIPT_TYPES or rec["payload"].get("receipt") is None:
            continue
        count += 1
        payload = rec["payload"]
        node = payload.get("node")
        try:
            receipt = Receipt.from_dict(payload["receipt"])
        except ReceiptError as exc:
            problems.append(
                FleetProblem("malformed_receipt", str(exc), str(node), rec["seq"], None)
            )
            continue
        where = dict(node=str(node), seq=rec["seq"], run_id=receipt.run_id)
        if node not in listed:
            problems.append(
                FleetProblem("unknown_node", f"node {node!r} is not in the node list", **where)
            )
            continue
        if receipt.log_id != listed[node]["log_id"]:
            owner = by_log.get(receipt.log_id)
            problems.append(
                FleetProblem(
                    "wrong_node",
                    f"the receipt points at log {receipt.log_id}"
                    + (f", node {owner}'s" if owner else ", which no listed node owns")
                    + f", not node {node}'s log {listed[node]['log_id']}",
                    **where,
                )
            )
            continue
        if payload.get("code_sha256") and payload["code_sha256"] != receipt.code_sha256:
            problems.append(
                FleetProblem(
                    "code_mismatch",
                    f"the dispatcher sent code {str(payload['code_sha256'])[:16]}…, the node "
                    f"recorded {receipt.code_sha256[:16]}…",
                    **where,
                )
            )
        wanted.setdefault(str(node), []).append((rec, receipt))

    if listed:
        for name in sorted(set(node_logs) - set(listed)):
            problems.append(
                FleetProblem(
                    "unknown_node",
                    f"a log was given for node {name!r}, which is not in the node list",
                    node=name,
                )
            )
    node_reports: dict[str, Any] = {}
    for name in sorted(set(wanted) | (set(node_logs) & set(listed))):
        directory = node_logs.get(name)
        if directory is None:
            problems.append(
                FleetProblem(
                    "node_log_missing",
                    f"{len(wanted[name])} receipt(s) point at node {name}, whose log was not given",
                    node=name,
                )
            )
            continue
        try:
            report = verify(Path(directory), trust_root=listed[name]["key_id"])
        except VerificationNotPossible as exc:
            problems.append(FleetProblem("node_log_failed", str(exc), node=name))
            continue
        node_reports[name] = report.to_dict()
        if not report.ok:
            first = report.problems[0]
            problems.append(
                FleetProblem(
                    "node_log_failed",
                    f"node {name}'s log ({directory}): {_first(report)}",
                    node=name,
                    seq=first.seq,
                )
            )
        if report.log_id is not None and report.log_id != listed[name]["log_id"]:
            problems.append(
                FleetProblem(
                    "node_log_failed",
                    f"{directory} holds log {report.log_id}, node {name}'s is "
                    f"{listed[name]['log_id']}",
                    node=name,
                )
            )
        items = wanted.get(name, [])
        index = index_records(
            Path(directory), (ref.seq for _, r in items for _, ref in r.records())
        )
        for rec, receipt in items:
            for p in check_receipt(receipt, report, index):
                if p.kind == "log_failed":
                    continue  # named once for the node above
                problems.append(
                    FleetProblem(
                        p.kind,
                        f"receipt of run {receipt.run_id} (dispatcher seq {rec['seq']}): "
                        f"{p.message}",
                        node=name,
                        seq=rec["seq"],
                        run_id=receipt.run_id,
                    )
                )
    return FleetReport(
        dispatcher_log=str(dispatcher_log),
        dispatcher_log_id=dreport.log_id,
        nodes=tuple(listed),
        node_logs=node_reports,
        receipts=count,
        problems=tuple(problems),
    )
