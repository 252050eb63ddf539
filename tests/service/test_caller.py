"""`Pipeline.execute(caller=...)`: the caller lands in every audit record of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellblock.pipeline import Pipeline
from tests.service.conftest import REVIEW

pytestmark = [pytest.mark.docker]


def _records(audit_dir: Path) -> list[dict]:
    return [
        json.loads(line)["record"]
        for seg in sorted(audit_dir.glob("seg-*.jsonl"))
        for line in seg.read_text().splitlines()
        if line.strip()
    ]


def test_caller_in_every_record_of_the_run_and_absent_otherwise(tmp_path: Path) -> None:
    caller = {"subject": "token:0123456789abcdef", "token_id": "0123456789abcdef", "via": "test"}
    with Pipeline(REVIEW, audit_dir=tmp_path, use_pool=False) as pipeline:
        with_caller = pipeline.execute("print(1)", caller=caller)
        # high (eval of a value from outside the program): review, so an approval record too
        reviewed = pipeline.execute("import os; eval(os.environ.get('E', '1'))", caller=caller)
        without = pipeline.execute("print(2)")
    records = _records(tmp_path)

    def of(run_id: str) -> list[dict]:
        return [r for r in records if r["payload"].get("run_id") == run_id]

    assert [r["type"] for r in of(with_caller.run_id)] == [
        "assessment",
        "decision",
        "execution.started",
        "execution.finished",
    ]
    assert [r["type"] for r in of(reviewed.run_id)] == ["assessment", "decision", "approval"]
    for r in of(with_caller.run_id) + of(reviewed.run_id):
        assert r["payload"]["caller"] == caller
    assert all("caller" not in r["payload"] for r in of(without.run_id))
