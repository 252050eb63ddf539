"""Detection and false-positive rates on the labelled corpus, with real Bandit and Semgrep."""

from __future__ import annotations

from cellblock.assess import CATEGORIES, Assessment, Level

try:  # tests/ may or may not be a package; support both import modes
    from .assess_corpus import Sample
except ImportError:
    from assess_corpus import Sample  # type: ignore[no-redef]


def _tool_level(a: Assessment, tool: str) -> Level:
    return max((f.severity for f in a.findings if f.tool == tool), default=Level.NONE)


def test_corpus_shape(corpus: list[Sample]) -> None:
    dangerous = [s for s in corpus if s.kind == "dangerous"]
    benign = [s for s in corpus if s.kind == "benign"]
    assert len(dangerous) >= 80
    assert len(benign) >= 80
    assert sum(s.obfuscated for s in dangerous) >= 30
    cats = {s.category for s in dangerous}
    assert None not in cats, "every dangerous sample names its category"
    assert cats <= CATEGORIES
    for needed in ("process", "network", "filesystem", "ffi", "obfuscation", "deserialization",
                   "dynamic-code", "resource", "escape", "introspection", "environment"):
        assert needed in cats, needed
    assert not any(s.path.name.startswith("test_") for s in corpus)


def test_no_analyzer_errors_on_corpus(sweep: dict[str, Assessment]) -> None:
    errors = {k: a.errors for k, a in sweep.items() if a.errors}
    assert errors == {}
    assert all(a.deep_ran for a in sweep.values())


def test_detection_rate_at_medium(corpus: list[Sample], sweep: dict[str, Assessment]) -> None:
    dangerous = [s for s in corpus if s.kind == "dangerous"]
    missed = [s.path.name for s in dangerous if sweep[str(s.path)].level < Level.MEDIUM]
    rate = 1 - len(missed) / len(dangerous)
    assert rate >= 0.95, f"detection {rate:.1%}; missed {missed}"


def test_zero_false_positives_at_medium(corpus: list[Sample],
                                        sweep: dict[str, Assessment]) -> None:
    flagged = {
        s.path.name: [(f.tool, f.rule_id, f.line) for f in sweep[str(s.path)].findings
                      if f.severity >= Level.MEDIUM]
        for s in corpus if s.kind == "benign" and sweep[str(s.path)].level >= Level.MEDIUM
    }
    assert flagged == {}


def test_fast_path_alone_meets_goals(corpus: list[Sample], sweep: dict[str, Assessment]) -> None:
    # The fast path (AST + Bandit) must not depend on Semgrep to reach the detection goal.
    dangerous = [s for s in corpus if s.kind == "dangerous"]
    fast = [max(_tool_level(sweep[str(s.path)], "ast"), _tool_level(sweep[str(s.path)], "bandit"))
            for s in dangerous]
    assert sum(lv >= Level.MEDIUM for lv in fast) / len(dangerous) >= 0.95


def test_obfuscated_samples_evade_bandit(corpus: list[Sample],
                                         sweep: dict[str, Assessment]) -> None:
    # The corpus claim: at least 30 obfuscated samples that Bandit alone rates below medium,
    # all of which the combined assessment still catches.
    evading = [s for s in corpus if s.obfuscated
               and _tool_level(sweep[str(s.path)], "bandit") < Level.MEDIUM]
    assert len(evading) >= 30
    assert all(sweep[str(s.path)].level >= Level.MEDIUM for s in evading)


def test_obfuscated_dynamic_code_is_critical(corpus: list[Sample],
                                             sweep: dict[str, Assessment]) -> None:
    for s in corpus:
        if s.obfuscated and s.category in ("dynamic-code", "escape", "ffi"):
            assert sweep[str(s.path)].level == Level.CRITICAL, s.path.name


def test_benign_dependencies_reported(sweep: dict[str, Assessment]) -> None:
    pandas = next(a for k, a in sweep.items() if k.endswith("pandas_groupby.py"))
    assert "pandas" in pandas.dependencies
    assert "pandas" in pandas.missing_dependencies
