"""A batch's assessments in helper processes, ahead of the runs.

Bandit and the AST pass are pure Python: in the caller's process they hold the interpreter lock
that the threads driving the cells need, and they use one core. Helper processes assess the
programs in order, ahead of the runs, on every core; the pipeline records each assessment exactly
as if it had made it (it only takes one whose ``code_sha256`` matches the bytes it runs), and
assesses in line whenever a helper failed.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from cellblock.batch.interface import BatchItem
from cellblock.errors import CellblockError

if TYPE_CHECKING:
    from cellblock.assess import Assessment
    from cellblock.pipeline import Pipeline

MIN_PROGRAMS = 4  # below this, starting helper processes costs more than it saves
RESULT_WAIT_S = 300.0


def _warm() -> None:
    from cellblock.assess import AssessConfig, assess

    assess(b"print(1)\n", config=AssessConfig.from_dict({"deep": "never"}))


def _assess_one(raw: bytes, config: dict[str, Any], deep: bool | None) -> Assessment:
    from cellblock.assess import AssessConfig, assess

    return assess(raw, config=AssessConfig.from_dict(config), deep=deep)


class AheadAssessor:
    """Submits every program's assessment at once; ``get(i)`` waits for program ``i``'s."""

    def __init__(
        self, pipeline: Pipeline, items: list[BatchItem], *, deep: bool | None, enabled: bool
    ) -> None:
        self._futures: dict[int, Future[Assessment]] = {}
        self._pool: ProcessPoolExecutor | None = None
        workers = os.cpu_count() or 1
        if not enabled or len(items) < MIN_PROGRAMS or workers < 2:
            return
        from cellblock.sandbox._sandbox import decode_source

        policy = pipeline.policy.assessment
        config = {
            "deep": policy.deep,
            "rule_levels": dict(policy.rule_levels),
            "category_levels": dict(policy.category_levels),
        }
        # forkserver: never fork the caller's process, whose threads hold engine connections
        context = multiprocessing.get_context("forkserver")
        self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_warm)
        for index, item in enumerate(items):
            try:
                raw = decode_source(item.code).encode("utf-8", "surrogateescape")
            except CellblockError:
                continue  # the pipeline reports it for this program
            self._futures[index] = self._pool.submit(_assess_one, raw, config, deep)

    def get(self, index: int) -> Assessment | None:
        future = self._futures.pop(index, None)
        if future is None:
            return None
        try:
            return future.result(timeout=RESULT_WAIT_S)
        except Exception:  # a helper failed: the pipeline assesses in line
            return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
