"""The AST pass's evaluation budget: hostile code cannot make assessment itself the denial of
service (work that grows with the product of its loops, strings that double, widths and
replacements that ask for gigabytes), and what the budget cuts short is judged as unknown,
never as harmless."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from cellblock.assess._ast_pass import AstAnalyzer
from cellblock.assess._ast_pass._resolve import Resolver
from cellblock.assess._ast_pass._values import (
    MAX_FOLDED,
    MAX_STEPS,
    Budget,
    BudgetExhausted,
    Val,
)
from cellblock.assess._interface import Finding, Level, Source

BUDGET_RULE = "cb.resource.analysis-budget"


class Meter:
    """Counts the resolver's evaluation steps and the longest string it ever produced."""

    def __init__(self) -> None:
        self.evaluations = 0
        self.longest = 0


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Meter]:
    m = Meter()
    evaluate = Resolver._resolve

    def counted(self: Resolver, node: ast.AST, env: dict[str, list[Val]], depth: int
                ) -> list[Val]:
        m.evaluations += 1
        out = evaluate(self, node, env, depth)
        for v in out:
            if isinstance(v.value, str | bytes):
                m.longest = max(m.longest, len(v.value))
        return out

    monkeypatch.setattr(Resolver, "_resolve", counted)
    yield m


def run(code: str) -> list[Finding]:
    return list(AstAnalyzer().analyze(Source(code, "t.py", tuple(code.splitlines()))).findings)


def top(findings: list[Finding]) -> Level:
    return max((f.severity for f in findings), default=Level.NONE)


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


# Each of these took seconds to minutes, or gigabytes, before the budget (the nested
# comprehension 8.6 s at n=1000 and a MemoryError at n=5000; fifty comprehensions 21 s).
# MAX_COMPREHENSION keeps each comprehension short, so these multiply short ones.
EXPENSIVE = {
    "nested comprehensions": (
        "x = [[j + i for j in range(4000)] for i in range(4000)]\ny = ''.join(x)\n"),
    "many comprehensions": "".join(
        f"v{k} = ''.join([(i * 7 + {k}) % 11 for i in range(4000)])\n" for k in range(50)),
    "a comprehension per element of a comprehension": (
        "x = [''.join([chr(65 + (i + j) % 26) for j in range(3000)]) for i in range(3000)]\n"
        "print(''.join(x))\n"),
}


@pytest.mark.parametrize("code", EXPENSIVE.values(), ids=EXPENSIVE.keys())
def test_evaluation_work_is_bounded(meter: Meter, code: str) -> None:
    findings = run(code)
    # each step of the budget is one evaluation inside a comprehension; the rest of the work is
    # proportional to the size of the program
    assert meter.evaluations < MAX_STEPS + 50 * len(code)
    assert BUDGET_RULE in rules(findings)
    assert top(findings) == Level.LOW  # incomplete analysis is recorded, not a verdict


GROWING = {
    # bindings are flow-insensitive, so the order of the lines is the attacker's to choose:
    # this one has the pass fold the chain from its first link up
    "doubling": "print(m)\n" + "".join(
        f"{c} = {p} + {p}\n" for p, c in zip("lkjihgfedcba", "mlkjihgfedcb")) + "a = 'x' * 4096\n",
    "replace into itself": (
        "a = 'x' * 4096\nb = a.replace('', a)\nc = b.replace('', b)\nprint(c.upper())\n"),
    "width": "a = '%999999999s' % 'x'\nb = '{:>999999999}'.format('x')\nprint(a.upper())\n",
    "star width": "a = '%*s' % (999999999, 'x')\nprint(a.upper())\n",
    "repeated field": (
        "a = 'x' * 4096\n" + "".join(f"{c} = {p} + {p}\n" for p, c in zip("abcdefgh", "bcdefghk"))
        + "m = ('{0}' * 4000).format(k)\nn = ('%s' * 4000) % tuple([k] * 4000)\n"
        + "p = f'{k}{k}{k}{k}{k}{k}{k}{k}{k}{k}'\nprint(m.upper(), n.upper(), p.upper())\n"),
    "split": "a = ',' * 4096\nb = a + a\nc = b + b\nd = c + c\nprint(d.split(','))\n",
}


@pytest.mark.parametrize("code", GROWING.values(), ids=GROWING.keys())
def test_folded_strings_stay_bounded(meter: Meter, code: str) -> None:
    run(code)
    assert meter.longest <= MAX_FOLDED


def _reversals(count: int) -> str:
    import base64
    import zlib
    blob = base64.b64encode(zlib.compress(b"A" * (1 << 20))).decode()
    return (f"import zlib, base64\nbig = zlib.decompress(base64.b64decode('{blob}')).decode()\n"
            + "".join(f"r{k} = ''.join(reversed(big))\n" for k in range(count)))


def test_a_decoded_megabyte_reversed_many_times() -> None:
    findings = run(_reversals(80))
    assert BUDGET_RULE in rules(findings)  # 80 MiB of reversals exceed the volume budget


def test_negative_sizes_refund_nothing() -> None:
    budget = Budget(steps=10, volume=10)
    budget.materialize(-1_000_000)
    with pytest.raises(BudgetExhausted):
        budget.materialize(11)
    # in a program: 'x' * -999999999 builds nothing, and must not pay for 80 MiB of reversals
    refunds = "".join(f"n{k} = 'x' * -999999999\n" for k in range(200))
    # (the pass visits the last statements first: the refunds come before the work)
    assert BUDGET_RULE in rules(run(_reversals(80) + refunds))


BOMB = "x = [[j + i for j in range(4000)] for i in range(4000)]\ny = ''.join(x)\n"
HIDDEN = "[chr(c) for c in [111, 115]]"


@pytest.mark.parametrize(("sink", "at_least"), [
    (f"m = __import__(''.join({HIDDEN}))\nm.system('id')\n", Level.HIGH),
    (f"import builtins\ngetattr(builtins, ''.join({HIDDEN}))('x')\n", Level.HIGH),
    (f"exec(''.join({HIDDEN}))\n", Level.CRITICAL),
    ("import os\nos.system('id')\n", Level.HIGH),
    ("import subprocess\nsubprocess.run(['id'])\n", Level.HIGH),
])
def test_after_the_budget_is_spent_sinks_are_still_judged(sink: str, at_least: Level) -> None:
    findings = run(BOMB + sink)
    assert BUDGET_RULE in rules(findings)
    assert top(findings) >= at_least


def test_without_the_bomb_the_same_obfuscation_is_seen_through() -> None:
    findings = run(f"m = __import__(''.join({HIDDEN}))\nm.system('id')\n")
    assert BUDGET_RULE not in rules(findings)
    assert "cb.obfuscation.hidden-import" in rules(findings)
    assert top(findings) == Level.CRITICAL


def test_decoded_payloads_share_the_budget(meter: Meter) -> None:
    import base64
    inner = BOMB + "import os\nos.system('id')\n"
    code = "".join(
        f"exec(__import__('base64').b64decode('{base64.b64encode(inner.encode()).decode()}'))\n"
        for _ in range(3))
    findings = run(code)
    assert meter.evaluations < MAX_STEPS + 50 * len(code)
    assert top(findings) == Level.CRITICAL


def test_long_comprehensions_are_not_evaluated(meter: Meter) -> None:
    # generated test code fills thousands of numbers; none of it is evaluated element by element
    code = ("data = [(i * 7919) % 10007 for i in range(19214)]\n"
            "assert len(sorted(data)) == len(data)\n")
    run(code)
    assert meter.evaluations < 200
    # and a long one at a sink is judged as what it is: code the pass cannot read
    hidden = "exec(''.join(chr(32 + i % 90) for i in range(5000)))\n"
    assert top(run(hidden)) == Level.CRITICAL


def test_ordinary_large_loops_do_not_touch_the_budget() -> None:
    code = "".join(f"total{k} = sum(range(19999))\nfor i in range(19999):\n    pass\n"
                   f"xs{k} = list(range(19999))\n" for k in range(40))
    assert BUDGET_RULE not in rules(run(code))


def test_lazy_ranges_still_fold() -> None:
    code = "import os\ngetattr(os, ''.join(chr(c) for c in range(115, 116)) + 'ystem')('id')\n"
    assert top(run(code)) == Level.CRITICAL
    assert top(run("import os\ngetattr(os, 'xsystem'[range(7)[1]:])('id')\n")) == Level.CRITICAL
