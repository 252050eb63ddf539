"""Detection and false-positive rates on the labelled corpus, with real Bandit and Semgrep.

Three kinds of sample: ``dangerous`` (must reach medium or above, and never fall below the level
pinned in corpus_levels.json), ``benign`` (must stay below medium) and ``review`` (ordinary code
that is medium by design, so the default policy asks a person: program-built ``eval``).
"""

from __future__ import annotations

import json
from pathlib import Path

from cellblock.assess import CATEGORIES, Assessment, Level
from cellblock.policy import load_preset

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
    review = [s for s in corpus if s.kind == "review"]
    assert len(review) >= 6
    assert {s.category for s in review} == {"dynamic-code"}
    assert {s.kind for s in corpus} == {"dangerous", "benign", "review"}


PINNED = json.loads((Path(__file__).parent / "corpus_levels.json").read_text())


def test_no_dangerous_sample_falls_below_its_pinned_level(
        corpus: list[Sample], sweep: dict[str, Assessment]) -> None:
    # The levels every dangerous sample had when eval of program-built strings became medium
    # (issue 9 point 16): no change to the assessment may lower one of them.
    dangerous = {s.path.name: sweep[str(s.path)].level for s in corpus if s.kind == "dangerous"}
    assert set(PINNED) <= set(dangerous), "a pinned sample is missing from the corpus"
    lowered = {name: (str(dangerous[name]), want) for name, want in PINNED.items()
               if dangerous[name] < Level.parse(want)}
    assert lowered == {}


def test_review_samples_are_medium_in_every_analyzer(
        corpus: list[Sample], sweep: dict[str, Assessment]) -> None:
    policy = load_preset("strict")  # the default
    for s in corpus:
        if s.kind != "review":
            continue
        a = sweep[str(s.path)]
        assert a.level == Level.MEDIUM, (s.path.name, [(f.tool, f.rule_id, str(f.severity))
                                                       for f in a.findings])
        for tool in ("ast", "bandit", "semgrep"):
            assert _tool_level(a, tool) == Level.MEDIUM, (s.path.name, tool)
        assert "cb.dynamic-code.program-built" in {f.rule_id for f in a.findings}, s.path.name
        assert policy.decide(a.level).action == "review", s.path.name


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
