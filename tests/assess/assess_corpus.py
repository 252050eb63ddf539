"""The labelled corpus in tests/corpus, as data for the assess tests and the benchmark."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@dataclass(frozen=True)
class Sample:
    path: Path
    kind: str  # "dangerous" | "benign"
    category: str | None
    obfuscated: bool

    @property
    def code(self) -> bytes:
        return self.path.read_bytes()


def load_corpus() -> list[Sample]:
    out = []
    for p in sorted(CORPUS.glob("*/*.py")):
        head = p.read_text(encoding="utf-8")[:200]
        cat = re.search(r"^# category: ([\w-]+)", head, re.M)
        obf = re.search(r"^# obfuscated: (yes|no)", head, re.M)
        out.append(Sample(p, p.parent.name, cat.group(1) if cat else None,
                          bool(obf and obf.group(1) == "yes")))
    return out
