"""Pipeline.map / execute_many on real containers: order, failures and timeouts in the middle,
and the audit records of a batch (single-use cells and opt-in shared cells)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cellblock.audit import verify
from cellblock.batch import BatchError, BatchItem, BatchItemError, BatchRunError
from cellblock.pipeline import Pipeline

pytestmark = pytest.mark.docker


def records(audit_dir: Path) -> list[dict[str, Any]]:
    out = []
    for seg in sorted(audit_dir.glob("seg-*.jsonl")):
        for line in seg.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line)["record"])
    return out


@pytest.mark.parametrize("cell_mode", ["single", "shared"])
def test_results_keep_the_order_with_a_failure_and_a_timeout_in_the_middle(
    pipeline: Pipeline, batch_policy: tuple[Path, Path, Path], cell_mode: str
) -> None:
    # later programs finish first: the order of results is the order of the programs
    codes = [f"import time; time.sleep({0.05 * (6 - i)}); print({i})" for i in range(6)]
    codes[2] = "import sys; print('about to fail'); sys.exit(3)"
    codes[4] = "while True:\n    pass\n"
    results = pipeline.map(
        codes,
        concurrency=2,
        cell_mode=cell_mode,  # type: ignore[arg-type]
        progress=False,
        limits_override={"timeout_s": 2},
    )
    assert len(results) == 6
    for i, r in enumerate(results):
        assert r.execution is not None
        if i == 2:
            assert r.status == "error" and r.execution.exit_code == 3
            assert r.execution.stdout == "about to fail\n"
        elif i == 4:
            assert r.status == "timeout" and r.execution.timed_out
        else:
            assert r.status == "ok", (i, r.execution)
            assert r.execution.stdout == f"{i}\n"

    _, audit_dir, pub = batch_policy
    pipeline.close()
    assert verify(audit_dir, trust_root=pub).ok
    recs = records(audit_dir)
    started = [r for r in recs if r["type"] == "batch.started"]
    finished = [r for r in recs if r["type"] == "batch.finished"]
    assert len(started) == 1 and len(finished) == 1
    batch_id = started[0]["payload"]["batch_id"]
    assert started[0]["payload"]["cell_mode"] == cell_mode
    assert started[0]["payload"]["programs"] == 6
    assert finished[0]["payload"]["ran"] == 6
    # every program is still assessed, decided and recorded on its own, tagged with the batch
    for kind in ("assessment", "decision", "execution.started", "execution.finished"):
        tagged = [r["payload"] for r in recs if r["type"] == kind]
        assert sorted(p["batch_index"] for p in tagged) == list(range(6)), kind
        assert {p["batch_id"] for p in tagged} == {batch_id}
    assigned = [r["payload"] for r in recs if r["type"] == "batch.cell.assigned"]
    if cell_mode == "shared":
        opened = [r["payload"] for r in recs if r["type"] == "batch.cell.opened"]
        closed = [r["payload"] for r in recs if r["type"] == "batch.cell.closed"]
        assert opened and len(opened) == len(closed)
        assert sorted(p["batch_index"] for p in assigned) == list(range(6))
        assert {p["container_id"] for p in assigned} <= {p["container_id"] for p in opened}
    else:
        assert assigned == []


def test_execute_many_returns_errors_in_place_and_map_raises_with_every_outcome(
    pipeline: Pipeline,
) -> None:
    items = [BatchItem("print('a')", id="first"), BatchItem(b"\xff\xfe\x00bad", id="bad"),
             BatchItem("print(input())", stdin=b"fed\n", id="stdin")]  # fmt: skip
    outcomes = pipeline.execute_many(items, progress=False)
    assert not isinstance(outcomes[0], BatchItemError) and outcomes[0].status == "ok"
    assert isinstance(outcomes[1], BatchItemError)
    assert outcomes[1].index == 1 and outcomes[1].item_id == "bad"
    assert not isinstance(outcomes[2], BatchItemError)
    assert outcomes[2].execution is not None and outcomes[2].execution.stdout == "fed\n"
    with pytest.raises(BatchRunError) as info:
        pipeline.map(items, progress=False)
    assert "1 of 3 programs could not be run" in str(info.value)
    assert len(info.value.outcomes) == 3


def test_bad_batch_arguments_are_one_clear_error(pipeline: Pipeline) -> None:
    with pytest.raises(BatchError, match="concurrency must be at least 1"):
        pipeline.map(["print(1)"], concurrency=0, progress=False)
    with pytest.raises(BatchError, match="cell_mode must be one of"):
        pipeline.map(["print(1)"], cell_mode="pooled", progress=False)  # type: ignore[arg-type]
    with pytest.raises(BatchError, match="item 0 of the batch is a int"):
        pipeline.map([1], progress=False)  # type: ignore[list-item]
    assert pipeline.map([], progress=False) == []


def test_assessments_made_ahead_in_helper_processes_match_in_line_ones(
    pipeline: Pipeline,
) -> None:
    from cellblock.assess import assess

    codes = ["print(1)", "import os\nos.system('true')\n", "eval('1+1')", "x = 1", "print(2)"]
    results = pipeline.map(codes, progress=False)  # >= 4 programs: assessed ahead
    for code, result in zip(codes, results, strict=True):
        assert result.assessment is not None
        inline = assess(code.encode(), config=pipeline._assess_config())
        assert result.assessment.level == inline.level, code
        assert [f.rule_id for f in result.assessment.findings] == [
            f.rule_id for f in inline.findings
        ]
        assert result.decision.level == inline.level.value
