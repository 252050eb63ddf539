"""Shared vocabulary of the assessment: levels, findings and the analyzer interface.

Every analyzer (AST pass, Bandit, Semgrep) implements :class:`Analyzer` and returns an
:class:`AnalyzerResult`; the orchestrator in ``_core`` merges them into an ``Assessment``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from cellblock.errors import CellblockError

Confidence = Literal["low", "medium", "high"]

#: The documented set of finding categories (see docs/assess.md).
CATEGORIES: frozenset[str] = frozenset(
    {
        "process",  # spawning or signalling processes, shells
        "network",  # sockets, HTTP clients, mail, FTP
        "filesystem",  # paths outside the working directory, destructive file operations
        "ffi",  # ctypes, cffi: arbitrary native code
        "obfuscation",  # computed names, decoded strings, reflective lookups that hide intent
        "deserialization",  # pickle, marshal, shelve, unsafe yaml
        "dynamic-code",  # exec, eval, compile, import of computed names
        "resource",  # fork/thread bombs, huge allocations, rlimit and signal tricks
        "escape",  # interpreter/sandbox escape primitives: __subclasses__, frames, sys.modules
        "crypto-weakness",  # weak hashes and ciphers, insecure randomness for secrets
        "introspection",  # frames, gc, inspect: reading interpreter state
        "environment",  # environment variables, privileges, interpreter configuration
        "injection",  # SQL/XML/template injection (mostly from Bandit)
        "parse-error",  # the code does not parse or decode: fail closed
        "analyzer-error",  # an analyzer crashed, timed out or is missing: fail closed
        "misc",  # anything an analyzer reports that we have no mapping for
    }
)


class AssessError(CellblockError):
    """Base of every error raised on purpose by :mod:`cellblock.assess`."""

    exit_code = 2  # the CLI treats these as usage or input problems


_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class Level(str, Enum):  # noqa: UP042 - the policy pipeline expects (str, Enum)
    """How much a finding, or the whole code, should worry a policy. Ordered by rank."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    # str's comparison would order alphabetically; compare by rank instead.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank >= other.rank

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Level) -> Level:
        """Parse a level name (case-insensitive), raising :class:`AssessError` if unknown."""
        if isinstance(value, Level):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(lv.value for lv in cls)
            raise AssessError(f"unknown level {value!r}; use one of: {names}") from None

    def bump(self, steps: int = 1) -> Level:
        """The level ``steps`` ranks higher, capped at critical."""
        order = list(Level)
        return order[min(self.rank + steps, len(order) - 1)]


@dataclass(frozen=True)
class Finding:
    """One thing an analyzer noticed, with enough context for a person to judge it."""

    tool: str
    rule_id: str
    category: str
    severity: Level
    confidence: Confidence
    cwe: int | None
    line: int
    column: int
    source_line: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "rule_id": self.rule_id,
            "category": self.category,
            "severity": self.severity.value,
            "confidence": self.confidence,
            "cwe": self.cwe,
            "line": self.line,
            "column": self.column,
            "source_line": self.source_line,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        conf = str(data.get("confidence", "medium"))
        return cls(
            tool=str(data["tool"]),
            rule_id=str(data["rule_id"]),
            category=str(data["category"]),
            severity=Level.parse(str(data["severity"])),
            confidence=conf if conf in ("low", "medium", "high") else "medium",  # type: ignore[arg-type]
            cwe=None if data.get("cwe") is None else int(data["cwe"]),
            line=int(data.get("line", 0)),
            column=int(data.get("column", 0)),
            source_line=str(data.get("source_line", "")),
            message=str(data.get("message", "")),
        )


@dataclass(frozen=True)
class Source:
    """The code under assessment, decoded once and shared by every analyzer."""

    text: str
    filename: str
    lines: tuple[str, ...] = field(default=())

    def line(self, lineno: int) -> str:
        if 1 <= lineno <= len(self.lines):
            return self.lines[lineno - 1].strip()
        return ""


@dataclass(frozen=True)
class AnalyzerResult:
    """What one analyzer produced: findings, plus an error message if it failed."""

    name: str
    findings: tuple[Finding, ...]
    version: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Analyzer(ABC):
    """One static analyzer. Implementations must never raise for bad input: they fail closed
    by returning an ``AnalyzerResult`` with ``error`` set."""

    name: str

    @abstractmethod
    def version(self) -> str:
        """The analyzer's version, recorded in the assessment."""

    @abstractmethod
    def analyze(self, source: Source) -> AnalyzerResult:
        """Analyze ``source`` and return its findings."""
