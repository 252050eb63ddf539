"""Shared cells for the opt-in ``shared`` batch mode."""

from __future__ import annotations

from typing import Any

from cellblock.batch.interface import BatchError


class SharedCells:
    def __init__(self, pipeline: Any, *, programs_per_cell: int, batch_id: str) -> None:
        raise BatchError("the shared cell mode is not available in this build")
