"""Receipts on one machine: every result says where it was recorded, and that can be checked."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellblock.audit import (
    Receipt,
    ReceiptError,
    RecordRef,
    generate_keypair,
    key_id,
    load_public,
    verify_receipt,
)
from cellblock.pipeline import Approval, Pipeline
from cellblock.policy import load_policy

from ._logtools import drop_records_from, records, rewrite_record

pytestmark = pytest.mark.docker

FIXTURES = Path(__file__).parent.parent / "fixtures"


def policy_text(decisions: str, audit_dir: Path, key: Path) -> str:
    base = (FIXTURES / "runc-open.yaml").read_text()
    base = base.replace(
        "decisions:\n  none: allow\n  low: allow\n  medium: allow\n  high: allow\n  critical: block",
        "decisions:\n" + decisions,
    )
    return base + f"audit:\n  directory: {audit_dir}\n  signing_key: {key}\n"


@pytest.fixture
def node(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A policy file whose log and key live in the test's own directory."""
    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    generate_keypair(key, pub)
    audit = tmp_path / "audit"

    def make(
        decisions: str = "  none: allow\n  low: allow\n  medium: allow\n  high: allow\n"
        "  critical: block",
    ) -> Path:
        path = tmp_path / "policy.yaml"
        path.write_text(policy_text(decisions, audit, key))
        return path

    return make, audit, pub


def test_a_run_carries_a_receipt_that_checks_out(node, docker_client) -> None:  # type: ignore[no-untyped-def]
    make, audit, pub = node
    with Pipeline(make(), use_pool=False) as p:
        result = p.execute("print(6 * 7)")
        log_id, kid = p.audit.log_id, p.audit.key_id
    assert result.execution is not None and result.execution.stdout == "42\n"
    r = result.receipt
    assert r is not None
    assert (r.log_id, r.key_id, r.run_id) == (log_id, kid, result.run_id)
    assert r.key_id == key_id(load_public(pub))
    assert r.code_sha256 == result.code_sha256
    assert r.decision is not None and r.started is not None and r.finished is not None
    assert r.approval is None
    assert r.decision.seq < r.started.seq < r.finished.seq
    # the receipt points at exactly the records the log holds
    by_seq = {rec["seq"]: rec for rec in records(audit)}
    assert by_seq[r.started.seq]["type"] == "execution.started"
    assert by_seq[r.finished.seq]["type"] == "execution.finished"
    assert by_seq[r.finished.seq]["payload"]["run_id"] == result.run_id

    report = verify_receipt(r, audit, trust_root=pub)
    assert report.ok, report.problems
    assert report.log.ok

    # to_dict (and so --json) carries it, and it reads back unchanged
    data = result.to_dict()
    assert data["receipt"] == r.to_dict()
    assert data["receipt"]["started"] == {"seq": r.started.seq, "hash": r.started.hash}
    assert Receipt.from_dict(json.loads(json.dumps(data["receipt"]))) == r


def test_blocked_and_refused_runs_have_the_records_that_exist(node, docker_client) -> None:  # type: ignore[no-untyped-def]
    make, audit, pub = node
    policy = make(
        "  none: review\n  low: review\n  medium: review\n  high: block\n  critical: block"
    )
    with Pipeline(policy, use_pool=False) as p:
        refused = p.execute("print(1)", approver=lambda _req: Approval(False, by="alice"))
        blocked = p.execute("import os\nos.system('id')\nexec(input())\n")
    assert refused.status == "not_approved"
    r = refused.receipt
    assert r is not None and r.decision is not None and r.approval is not None
    assert (r.started, r.finished) == (None, None)
    assert verify_receipt(r, audit, trust_root=pub).ok

    assert blocked.status == "blocked"
    b = blocked.receipt
    assert b is not None and b.decision is not None
    assert (b.approval, b.started, b.finished) == (None, None, None)
    assert verify_receipt(b, audit, trust_root=pub).ok
    assert blocked.to_dict()["receipt"]["started"] is None


def test_tampering_is_named(node, docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make, audit, pub = node
    with Pipeline(make(), use_pool=False) as p:
        first = p.execute("print('first')")
        second = p.execute("print('second')")
    r1, r2 = first.receipt, second.receipt
    assert r1 is not None and r2 is not None and r1.finished is not None
    assert r2.finished is not None and r2.started is not None

    # a forged hash, another run's record, another log's id: each named, the log itself intact
    forged = dataclasses.replace(r1, finished=RecordRef(r1.finished.seq, "0" * 64))
    report = verify_receipt(forged, audit, trust_root=pub)
    assert report.log.ok and [p.kind for p in report.problems] == ["hash_mismatch"]
    assert report.problems[0].seq == r1.finished.seq

    swapped = dataclasses.replace(r1, finished=r2.finished)
    kinds = [p.kind for p in verify_receipt(swapped, audit, trust_root=pub).problems]
    assert kinds == ["wrong_record"]

    elsewhere = dataclasses.replace(r1, log_id="0" * 32)
    problems = verify_receipt(elsewhere, audit, trust_root=pub).problems
    assert {p.kind for p in problems} == {"wrong_log", "wrong_record"}

    beyond = dataclasses.replace(r2, finished=RecordRef(r2.finished.seq + 1000, "a" * 64))
    assert [p.kind for p in verify_receipt(beyond, audit, trust_root=pub).problems] == [
        "record_missing"
    ]

    # the node's log edited: the run's output digest rewritten, hash recomputed to look right
    rewrite_record(audit, r2.finished.seq, {"stdout_sha256": "0" * 64}, rehash=True)
    report = verify_receipt(r2, audit, trust_root=pub)
    kinds = {p.kind for p in report.problems}
    assert "log_failed" in kinds and "hash_mismatch" in kinds
    assert not report.log.ok
    # the first run's receipt still matches its records, but its log no longer verifies
    assert [p.kind for p in verify_receipt(r1, audit, trust_root=pub).problems] == ["log_failed"]


def test_an_edit_without_rehash_and_a_truncation_are_named(node, docker_client) -> None:  # type: ignore[no-untyped-def]
    make, audit, pub = node
    with Pipeline(make(), use_pool=False) as p:
        r = p.execute("print(1)").receipt
    assert r is not None and r.started is not None and r.finished is not None
    rewrite_record(audit, r.started.seq, {"run_id": "f" * 32}, rehash=False)
    report = verify_receipt(r, audit, trust_root=pub)
    assert {"log_failed", "record_missing"} <= {p.kind for p in report.problems}
    assert any(p.seq == r.started.seq for p in report.problems if p.kind == "record_missing")

    drop_records_from(audit, r.finished.seq)
    report = verify_receipt(r, audit, trust_root=pub)
    assert "record_missing" in {p.kind for p in report.problems}


def test_a_receipt_checked_with_the_wrong_key_fails(node, docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make, audit, pub = node
    with Pipeline(make(), use_pool=False) as p:
        r = p.execute("print(1)").receipt
    assert r is not None
    other_key, other_pub = tmp_path / "o.key", tmp_path / "o.pub"
    generate_keypair(other_key, other_pub)
    report = verify_receipt(r, audit, trust_root=other_pub)
    assert not report.ok
    assert report.problems[0].kind == "log_failed"
    assert "unknown_key" in report.problems[0].message


def test_malformed_receipts_are_refused_with_the_field_named() -> None:
    good = Receipt("a" * 32, "ed25519:" + "b" * 64, "c" * 32, "d" * 64, RecordRef(3, "e" * 64))
    data = good.to_dict()
    assert Receipt.from_dict(data) == good
    for field, value, words in (
        ("v", 9, "version"),
        ("run_id", "", "run_id"),
        ("decision", {"seq": -1, "hash": "e" * 64}, "decision.seq"),
        ("started", {"seq": 1, "hash": "E" * 64}, "started.hash"),
        ("finished", [1], "finished"),
    ):
        with pytest.raises(ReceiptError, match=words):
            Receipt.from_dict({**data, field: value})
    with pytest.raises(ReceiptError):
        Receipt.from_dict("not an object")


def test_run_json_has_the_receipt(node, docker_client) -> None:  # type: ignore[no-untyped-def]
    make, audit, pub = node
    policy = make()
    out = subprocess.run(
        [sys.executable, "-m", "cellblock.cli", "run", "--json", "--policy", str(policy), "-"],
        input=b"print('hi')\n",
        capture_output=True,
        timeout=300,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["stdout"] == "hi\n"
    receipt = Receipt.from_dict(data["receipt"])
    assert receipt.run_id == data["run_id"]
    assert verify_receipt(receipt, audit, trust_root=pub).ok
    load_policy(policy)  # the policy file stays valid for the other tests' helper
