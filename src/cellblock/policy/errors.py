"""Errors raised by the policy subsystem. Each message says what is wrong and where."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cellblock.errors import CellblockError


class PolicyError(CellblockError):
    """Base of every policy error."""

    exit_code = 64  # EX_USAGE: the policy the user gave is wrong


class PolicyNotFoundError(PolicyError):
    """The named preset or policy file does not exist or cannot be read."""


class UnknownLevelError(PolicyError, ValueError):
    """An assessment level outside ``none, low, medium, high, critical`` was given to ``decide``."""


@dataclass(frozen=True)
class Issue:
    """One problem in a policy file.

    ``line`` and ``column`` are 1-based and ``None`` when the policy did not come from a file
    (for example a dict given to :meth:`Policy.from_dict`). ``path`` is the dotted field path,
    such as ``profiles.restricted.memory``; it is empty for problems with the document itself
    (YAML syntax, an empty file).
    """

    file: str
    line: int | None
    column: int | None
    path: str
    expected: str
    found: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: "
        if self.path:
            text += f"{self.path}: "
        text += f"expected {self.expected}, got {self.found}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class PolicyValidationError(PolicyError):
    """A policy file is not valid YAML or breaks the policy schema.

    ``issues`` lists every problem found, in file order; the message is one line per issue in
    the stable format ``FILE:LINE:COLUMN: FIELD: expected WHAT, got WHAT[; HINT]``.
    """

    def __init__(self, source: str, issues: Iterable[Issue]) -> None:
        self.source = source
        self.issues: list[Issue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
