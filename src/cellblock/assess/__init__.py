"""Static security assessment of untrusted Python (issue 3).

``assess(code)`` runs a fast path (parse check, our AST capability pass, Bandit in-process) and,
on demand, a deep path (Semgrep on rules shipped in this package, offline). Findings roll up into
a :class:`Level`; every failure (undecodable bytes, syntax error, crashed or missing analyzer)
fails closed with a finding, so the level is never ``none`` when something went wrong.

The sandbox is the security boundary; this decides how far to trust the code and records why.
See docs/assess.md.
"""

from __future__ import annotations

from cellblock.assess._config import AssessConfig
from cellblock.assess._core import Assessment, assess, assess_many
from cellblock.assess._deps import IMAGE_MODULES, check_dependencies
from cellblock.assess._interface import CATEGORIES, Analyzer, AssessError, Finding, Level

__all__ = [
    "CATEGORIES",
    "IMAGE_MODULES",
    "Analyzer",
    "AssessConfig",
    "AssessError",
    "Assessment",
    "Finding",
    "Level",
    "assess",
    "assess_many",
    "check_dependencies",
]
