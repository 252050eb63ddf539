"""Runs a batch through a pipeline: ordered results, N programs in flight, early stop when the
audit log cannot record (then no further program runs)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from cellblock.batch._progress import default_progress
from cellblock.batch.interface import (
    CELL_MODES,
    BatchError,
    BatchItem,
    BatchItemError,
    BatchProgress,
    CellMode,
)
from cellblock.errors import CellblockError

if TYPE_CHECKING:
    from cellblock.pipeline import Pipeline, PipelineResult


def as_items(
    codes: Iterable[BatchItem | str | bytes], stdin: Sequence[bytes | None] | None = None
) -> list[BatchItem]:
    items: list[BatchItem] = []
    for i, code in enumerate(codes):
        if isinstance(code, BatchItem):
            items.append(code)
        elif isinstance(code, str | bytes):
            items.append(BatchItem(code, stdin[i] if stdin is not None else None))
        else:
            raise BatchError(
                f"item {i} of the batch is a {type(code).__name__}; give source text, bytes "
                "or a BatchItem"
            )
    if stdin is not None and len(stdin) != len(items):
        raise BatchError(
            f"the batch has {len(items)} programs but {len(stdin)} stdin values; give one per "
            "program (or None)"
        )
    return items


def default_concurrency() -> int:
    return max(1, os.cpu_count() or 1)


def run_batch(
    pipeline: Pipeline,
    items: Sequence[BatchItem],
    *,
    concurrency: int | None = None,
    progress: BatchProgress | bool | None = None,
    cell_mode: CellMode = "single",
    programs_per_cell: int = 32,
    execute_kwargs: dict[str, Any] | None = None,
    assess_ahead: bool = True,
) -> list[PipelineResult | BatchItemError]:
    """Run every item through ``pipeline.execute``; outcomes in the items' order."""
    if cell_mode not in CELL_MODES:
        raise BatchError(f"cell_mode must be one of {', '.join(CELL_MODES)}, not {cell_mode!r}")
    workers = default_concurrency() if concurrency is None else int(concurrency)
    if workers < 1:
        raise BatchError(f"concurrency must be at least 1, not {concurrency!r}")
    if programs_per_cell < 1:
        raise BatchError(f"programs_per_cell must be at least 1, not {programs_per_cell!r}")
    kwargs = dict(execute_kwargs or {})
    batch_id = uuid.uuid4().hex
    total = len(items)
    bar = default_progress(progress)
    outcomes: list[PipelineResult | BatchItemError | None] = [None] * total
    lock = threading.Lock()
    stop: list[str] = []  # why no further program may start (the audit log failed)
    counts = {"done": 0, "failed": 0}
    next_index = iter(range(total))
    workers = min(workers, max(1, total))

    pipeline._record_batch(
        "batch.started",
        {
            "batch_id": batch_id,
            "programs": total,
            "concurrency": workers,
            "cell_mode": cell_mode,
            "programs_per_cell": programs_per_cell if cell_mode == "shared" else 1,
        },
    )
    if bar is not None:
        bar.start(total)
    from cellblock.batch._assess import AheadAssessor

    ahead = AheadAssessor(
        pipeline,
        list(items),
        deep=kwargs.get("deep"),
        enabled=not kwargs.get("skip_assessment") and assess_ahead,
    )

    def take() -> int | None:
        with lock:
            if stop:
                return None
            return next(next_index, None)

    def worker(slot: int) -> None:
        cells = pipeline._batch_cells(cell_mode, programs_per_cell, batch_id)
        try:
            while (index := take()) is not None:
                item = items[index]
                outcome: PipelineResult | BatchItemError
                try:
                    outcome = pipeline._execute(
                        item.code,
                        stdin=item.stdin,
                        batch={"batch_id": batch_id, "batch_index": index},
                        run=cells.run if cells is not None else None,
                        assessed=ahead.get(index),
                        **kwargs,
                    )
                except CellblockError as exc:
                    outcome = BatchItemError(str(exc), index=index, item_id=item.id)
                    outcome.__cause__ = exc
                    from cellblock.pipeline import AuditUnavailableError

                    if isinstance(exc, AuditUnavailableError):
                        with lock:
                            stop.append(str(exc))
                with lock:
                    outcomes[index] = outcome
                    counts["done"] += 1
                    failed = not _ok(outcome)
                    counts["failed"] += failed
                    done, nfailed = counts["done"], counts["failed"]
                if bar is not None:
                    bar.advance(done, nfailed)
        finally:
            if cells is not None:
                cells.close()

    try:
        if workers == 1:
            worker(0)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="cellblock-batch") as executor:
                for future in [executor.submit(worker, slot) for slot in range(workers)]:
                    future.result()
    finally:
        ahead.close()
        if bar is not None:
            bar.finish()
    final: list[PipelineResult | BatchItemError] = []
    for index, outcome in enumerate(outcomes):
        if outcome is None:
            outcome = BatchItemError(
                f"not run: the batch stopped because {stop[0] if stop else 'it was interrupted'}",
                index=index,
                item_id=items[index].id,
            )
        final.append(outcome)
    pipeline._record_batch(
        "batch.finished",
        {
            "batch_id": batch_id,
            "programs": total,
            "ran": sum(1 for o in final if not isinstance(o, BatchItemError) and o.ran),
            "errors": sum(1 for o in final if isinstance(o, BatchItemError)),
            "stopped": stop[0] if stop else None,
        },
    )
    return final


def _ok(outcome: Any) -> bool:
    return not isinstance(outcome, BatchItemError) and outcome.status == "ok"
