"""Batches: many programs through one pipeline, each still assessed, decided, run and recorded.

See docs/batch.md. Use :meth:`cellblock.Pipeline.map` or :meth:`cellblock.Pipeline.execute_many`.
"""

from cellblock.batch.interface import (
    CELL_MODES,
    BatchError,
    BatchInputError,
    BatchItem,
    BatchItemError,
    BatchProgress,
    BatchRunError,
    CellMode,
)

__all__ = [
    "CELL_MODES",
    "BatchError",
    "BatchInputError",
    "BatchItem",
    "BatchItemError",
    "BatchProgress",
    "BatchRunError",
    "CellMode",
]
