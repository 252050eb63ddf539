"""Assessment configuration: the data a policy changes (levels, thresholds, deep mode)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from cellblock.assess._interface import CATEGORIES, AssessError, Confidence, Level

DeepMode = Literal["never", "auto", "always"]
_CONFIDENCES: tuple[Confidence, ...] = ("low", "medium", "high")

#: Categories whose findings are raised to a fixed level by default (the issue's rule:
#: escape and FFI are critical whatever the analyzer said).
DEFAULT_CATEGORY_LEVELS: Mapping[str, Level] = MappingProxyType(
    {"escape": Level.CRITICAL, "ffi": Level.CRITICAL}
)
#: Rule ids with a fixed level by default. Obfuscated dynamic code is critical; mmap alone is
#: filed under ffi only for the record, so it is held at low.
DEFAULT_RULE_LEVELS: Mapping[str, Level] = MappingProxyType(
    {
        "cb.dynamic-code.obfuscated": Level.CRITICAL,
        "sg-dynamic-code-obfuscated": Level.CRITICAL,
        "cb.ffi.mmap": Level.LOW,
    }
)


def _levels(data: Mapping[str, Any], what: str) -> dict[str, Level]:
    if not isinstance(data, Mapping):
        raise AssessError(f"{what} must be a mapping of names to levels")
    return {str(k): Level.parse(v) for k, v in data.items()}


@dataclass(frozen=True)
class AssessConfig:
    """What the assessment does and how findings roll up. Every field has a safe default.

    ``rule_levels`` and ``category_levels`` replace a finding's severity (rule id wins over
    category). ``from_dict`` merges the given mappings over the defaults; the constructor uses
    exactly what it is given.
    """

    deep: DeepMode = "auto"
    rule_levels: Mapping[str, Level] = field(default_factory=lambda: dict(DEFAULT_RULE_LEVELS))
    category_levels: Mapping[str, Level] = field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_LEVELS)
    )
    #: In ``auto`` mode the deep path (Semgrep) runs when the fast path reaches this level.
    deep_threshold: Level = Level.MEDIUM
    #: Findings with lower confidence are reported but do not count towards the level.
    min_confidence: Confidence = "low"
    #: Level of a parse failure (undecodable bytes, syntax error, unknown Python version).
    parse_error_level: Level = Level.HIGH
    #: Level when an analyzer crashes, times out or is missing.
    analyzer_error_level: Level = Level.MEDIUM
    #: Code larger than this is not analyzed and fails closed at ``parse_error_level``.
    max_code_bytes: int = 1_000_000
    bandit_timeout_s: float = 20.0
    semgrep_timeout_s: float = 30.0
    #: CPU seconds after which the AST pass stops: ``cb.obfuscation.analysis-timeout`` (critical).
    ast_timeout_s: float = 10.0
    #: Use Semgrep's ``--experimental`` engine (about 15x faster here; see docs/assess.md).
    semgrep_experimental: bool = True
    #: Semgrep binary to run; ``None`` looks beside the interpreter, then on PATH.
    semgrep_binary: str | None = None
    #: Grammar the code must parse with: the sandbox image runs Python 3.11.
    target_python: tuple[int, int] = (3, 11)

    def __post_init__(self) -> None:
        if self.deep not in ("never", "auto", "always"):
            raise AssessError(f"deep must be never, auto or always, not {self.deep!r}")
        if self.min_confidence not in _CONFIDENCES:
            raise AssessError(f"min_confidence must be one of {', '.join(_CONFIDENCES)}")
        for k in self.category_levels:
            if k not in CATEGORIES:
                raise AssessError(f"unknown category {k!r} in category_levels")
        if self.parse_error_level == Level.NONE or self.analyzer_error_level == Level.NONE:
            raise AssessError("error levels cannot be none: the assessment fails closed")
        if (self.max_code_bytes <= 0 or self.bandit_timeout_s <= 0
                or self.semgrep_timeout_s <= 0 or self.ast_timeout_s <= 0):
            raise AssessError("sizes and timeouts must be positive")

    def level_for(self, rule_id: str, category: str, severity: Level) -> Level:
        if rule_id in self.rule_levels:
            return self.rule_levels[rule_id]
        if category in self.category_levels:
            return self.category_levels[category]
        return severity

    def to_dict(self) -> dict[str, Any]:
        return {
            "deep": self.deep,
            "rule_levels": {k: v.value for k, v in sorted(self.rule_levels.items())},
            "category_levels": {k: v.value for k, v in sorted(self.category_levels.items())},
            "deep_threshold": self.deep_threshold.value,
            "min_confidence": self.min_confidence,
            "parse_error_level": self.parse_error_level.value,
            "analyzer_error_level": self.analyzer_error_level.value,
            "max_code_bytes": self.max_code_bytes,
            "bandit_timeout_s": self.bandit_timeout_s,
            "semgrep_timeout_s": self.semgrep_timeout_s,
            "ast_timeout_s": self.ast_timeout_s,
            "semgrep_experimental": self.semgrep_experimental,
            "semgrep_binary": self.semgrep_binary,
            "target_python": list(self.target_python),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssessConfig:
        """Build a config from policy data; unknown keys are an error, mappings merge."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise AssessError(f"unknown assess config keys: {', '.join(sorted(unknown))}")
        kw: dict[str, Any] = {}
        try:
            for key, value in data.items():
                if key == "rule_levels":
                    kw[key] = {**DEFAULT_RULE_LEVELS, **_levels(value, key)}
                elif key == "category_levels":
                    kw[key] = {**DEFAULT_CATEGORY_LEVELS, **_levels(value, key)}
                elif key in ("deep_threshold", "parse_error_level", "analyzer_error_level"):
                    kw[key] = Level.parse(value)
                elif key in ("max_code_bytes",):
                    kw[key] = int(value)
                elif key in ("bandit_timeout_s", "semgrep_timeout_s", "ast_timeout_s"):
                    kw[key] = float(value)
                elif key == "semgrep_experimental":
                    kw[key] = bool(value)
                elif key == "semgrep_binary":
                    kw[key] = None if value is None else str(value)
                elif key == "target_python":
                    major, minor = value
                    kw[key] = (int(major), int(minor))
                else:
                    kw[key] = value
        except (TypeError, ValueError) as exc:
            raise AssessError(f"invalid assess config: {exc}") from None
        return cls(**kw)
