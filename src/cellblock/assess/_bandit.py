"""Bandit through its Python API, with findings mapped by test id into our categories.

Bandit's severities measure injection risk, not capability (``os.system("ls")`` is LOW), so its
own severity is ignored: the table below decides the category and level of each test id.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from typing import Any

from cellblock.assess._interface import (
    Analyzer,
    AnalyzerResult,
    Confidence,
    Finding,
    Level,
    Source,
)

TOOL = "bandit"
C, H, M, L, N = Level.CRITICAL, Level.HIGH, Level.MEDIUM, Level.LOW, Level.NONE

#: Bandit test id -> (category, level). Levels are defaults; the policy overrides by rule id.
BANDIT_MAP: dict[str, tuple[str, Level]] = {
    "B101": ("misc", N),  # assert
    # exec and eval: Bandit rates them medium and cannot see where the string comes from; the
    # AST pass and the Semgrep taint rules raise what is decoded, downloaded or read from outside
    "B102": ("dynamic-code", M),
    "B103": ("filesystem", L),  # permissive chmod
    "B104": ("network", L),  # bind all interfaces (a string literal)
    "B105": ("misc", L), "B106": ("misc", L), "B107": ("misc", L),  # hardcoded passwords
    "B108": ("filesystem", L),  # hardcoded /tmp
    "B110": ("misc", N), "B112": ("misc", N),  # try/except/pass|continue
    "B113": ("network", H),  # requests without timeout: it is a network request
    "B201": ("injection", L), "B202": ("filesystem", M),  # flask debug, tarfile members
    "B301": ("deserialization", H), "B302": ("deserialization", H),
    "B303": ("crypto-weakness", L), "B304": ("crypto-weakness", L),
    "B305": ("crypto-weakness", L), "B306": ("filesystem", L),
    "B307": ("dynamic-code", M), "B308": ("injection", L),
    "B310": ("network", H), "B311": ("crypto-weakness", N),  # random: fine for simulations
    "B312": ("network", H),
    **{f"B3{i}": ("injection", L) for i in range(13, 21)},  # xml parsers
    "B321": ("network", H), "B323": ("network", M), "B324": ("crypto-weakness", L),
    "B401": ("network", M), "B402": ("network", M), "B403": ("deserialization", L),
    "B404": ("process", L),
    **{f"B4{i:02d}": ("injection", L) for i in range(5, 12)},  # xml imports
    "B412": ("environment", L), "B413": ("crypto-weakness", L), "B415": ("network", L),
    **{f"B50{i}": ("network", M) for i in range(1, 10)},  # TLS verification and versions
    "B601": ("process", H), "B602": ("process", H), "B603": ("process", H),
    "B604": ("process", M), "B605": ("process", H), "B606": ("process", H),
    "B607": ("process", M), "B608": ("injection", L), "B609": ("process", M),
    "B610": ("injection", L), "B611": ("injection", L), "B612": ("network", M),
    "B613": ("obfuscation", H),  # trojan source (bidi characters)
    "B614": ("deserialization", H), "B615": ("network", H),
    "B701": ("injection", L), "B702": ("injection", L), "B703": ("injection", L),
    "B704": ("injection", L),
}

_log = logging.getLogger("bandit")
_log.addHandler(logging.NullHandler())  # keep Bandit's own error logging off our stderr
# Bandit loads every report formatter through stevedore; one whose optional dependency is absent
# (sarif) is logged as an ERROR wherever a server has configured root logging. We never use them.
logging.getLogger("stevedore.extension").setLevel(logging.CRITICAL)


def _conf(value: Any) -> Confidence:
    v = str(value).lower()
    return v if v in ("low", "medium", "high") else "medium"  # type: ignore[return-value]


class BanditAnalyzer(Analyzer):
    """Runs Bandit in-process on a temporary ``.py`` copy of the code, ``# nosec`` ignored."""

    name = TOOL

    def __init__(self, timeout_s: float = 20.0) -> None:
        self.timeout_s = timeout_s

    def version(self) -> str:
        try:
            import bandit

            return str(bandit.__version__)
        except Exception:
            return "unavailable"

    def analyze(self, source: Source) -> AnalyzerResult:
        box: dict[str, AnalyzerResult] = {}

        def work() -> None:
            try:
                box["r"] = self._run(source)
            except Exception as exc:
                box["r"] = self._error(f"Bandit crashed: {type(exc).__name__}: {exc}")

        # Bandit runs in-process and cannot be interrupted; a worker thread bounds our wait.
        t = threading.Thread(target=work, name="cellblock-bandit", daemon=True)
        t.start()
        t.join(self.timeout_s)
        if t.is_alive():
            return self._error(f"Bandit did not finish within {self.timeout_s:g} s")
        return box.get("r") or self._error("Bandit returned no result")

    def _error(self, msg: str) -> AnalyzerResult:
        return AnalyzerResult(TOOL, (), self.version(), error=msg)

    def _run(self, source: Source) -> AnalyzerResult:
        from bandit.core import config as b_config
        from bandit.core import manager as b_manager

        with tempfile.TemporaryDirectory(prefix="cellblock-bandit-") as tmp:
            path = os.path.join(tmp, "code.py")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(source.text)
            mgr = b_manager.BanditManager(
                b_config.BanditConfig(), "file", quiet=True, ignore_nosec=True
            )
            mgr.discover_files([path])
            if path not in mgr.files_list:
                return self._error("Bandit did not pick up the file to scan")
            mgr.run_tests()
            # Bandit "succeeds" with no findings on code it could not parse: guard that.
            if mgr.skipped:
                reasons = "; ".join(str(r) for _, r in mgr.skipped)
                return self._error(f"Bandit skipped the code: {reasons}")
            issues = mgr.get_issue_list()
        findings = []
        for issue in issues:
            test_id = str(issue.test_id)
            category, level = BANDIT_MAP.get(test_id, ("misc", L))
            line = int(issue.lineno) if isinstance(issue.lineno, int) else 1
            cwe = getattr(getattr(issue, "cwe", None), "id", None)
            findings.append(Finding(
                tool=TOOL,
                rule_id=test_id,
                category=category,
                severity=level,
                confidence=_conf(issue.confidence),
                cwe=int(cwe) if cwe else None,
                line=line,
                column=int(getattr(issue, "col_offset", 0) or 0) + 1,
                source_line=source.line(line)[:300],
                message=f"{issue.text} [{issue.test}]",
            ))
        return AnalyzerResult(TOOL, tuple(findings), self.version())
