"""Shared fixtures for the assess tests: the labelled corpus and one deep sweep over it."""

from __future__ import annotations

import pytest

try:  # tests/ may or may not be a package; support both import modes
    from .assess_corpus import Sample, load_corpus
except ImportError:
    from assess_corpus import Sample, load_corpus  # type: ignore[no-redef]

from cellblock.assess import Assessment, assess_many


@pytest.fixture(scope="session")
def corpus() -> list[Sample]:
    return load_corpus()


@pytest.fixture(scope="session")
def sweep(corpus: list[Sample]) -> dict[str, Assessment]:
    """Every corpus file assessed with the deep path forced on: one Semgrep call in total."""
    return assess_many({str(s.path): s.code for s in corpus}, deep=True)
