"""Batches of programs: the public types.

A batch is many programs of one caller run through one :class:`~cellblock.pipeline.Pipeline`.
Every program is still assessed, decided, run and recorded on its own; a batch only adds
concurrency, an order-preserving result list and (opt-in) a shared cell, see docs/batch.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cellblock.errors import CellblockError

if TYPE_CHECKING:
    from cellblock.pipeline import PipelineResult

#: ``single``: every program in its own single-use cell (the default, as ``execute``).
#: ``shared``: opt-in; one hardened cell runs several programs of this batch one after another,
#: each under its own uid, with everything it left removed in between (docs/sandbox.md).
CellMode = Literal["single", "shared"]
CELL_MODES: tuple[str, ...] = ("single", "shared")


class BatchError(CellblockError):
    """A batch could not run as asked (bad input, or some of its programs failed to run)."""

    exit_code = 125


class BatchInputError(BatchError):
    """The batch's input is malformed (a JSON Lines file, an item)."""

    exit_code = 64


class BatchItemError(BatchError):
    """One program of a batch could not be run (not: the program failed; that is a result)."""

    def __init__(self, message: str, *, index: int, item_id: str | None) -> None:
        super().__init__(message)
        self.index = index
        self.item_id = item_id


class BatchRunError(BatchError):
    """Some programs of a batch could not be run; ``outcomes`` holds every result and error in
    the batch's order."""

    def __init__(
        self, message: str, *, outcomes: Sequence[PipelineResult | BatchItemError]
    ) -> None:
        super().__init__(message)
        self.outcomes = list(outcomes)


@dataclass(frozen=True)
class BatchItem:
    """One program of a batch: its source, optional stdin and an optional caller's id."""

    code: str | bytes
    stdin: bytes | None = None
    id: str | None = None


class BatchProgress(ABC):
    """Told about each finished program (the CLI draws a bar on a terminal)."""

    @abstractmethod
    def start(self, total: int) -> None: ...

    @abstractmethod
    def advance(self, done: int, failed: int) -> None: ...

    @abstractmethod
    def finish(self) -> None: ...
