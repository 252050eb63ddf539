"""The error base shared by every cellblock subsystem.

Each subsystem derives one base from :class:`CellblockError` (``SandboxError``, ``AssessError``,
``AuditError``, ``PolicyError``) and raises narrower errors named after what failed. The message
of every error is written for a person: one sentence saying what is wrong and what to do.
"""

from __future__ import annotations


class CellblockError(Exception):
    """Base of every error cellblock raises on purpose.

    ``exit_code`` is what the CLI exits with when this error reaches it.
    """

    exit_code: int = 70  # EX_SOFTWARE: an internal or environment problem, not the program's fault

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
