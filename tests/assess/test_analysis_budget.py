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
    assert top(findings) == Level.HIGH  # ordinary code does not spend it


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
# cheap and ordinary-looking: six comprehensions of 4,096 twelve-term sums
PRELUDE = "".join(
    f"s{k} = str([i+i+i+i+i+i+i+i+i+i+i+i+{k} for i in range(4096)])\n" for k in range(12))
HIDDEN = "[chr(c) for c in [111, 115]]"
B64 = "aW1wb3J0IG9zOyBvcy5zeXN0ZW0oImlkIik="  # import os; os.system("id")


@pytest.mark.parametrize("sink", [
    f"m = __import__(''.join({HIDDEN}))\nm.system('id')\n",
    f"import builtins\ngetattr(builtins, ''.join({HIDDEN}))('x')\n",
    f"exec(''.join({HIDDEN}))\n",
    "import os\nos.system('id')\n",
    "import subprocess\nsubprocess.run(['id'])\n",
    "import sys\nsys.modules['o' + 's'].system('id')\n",
    "import os\nvars(os)['sys' + 'tem']('id')\n",
    "import os\nglobals()['o' + 's'].system('id')\n",
    "import operator, os\noperator.methodcaller('sys' + 'tem', 'id')(os)\n",
    f"import base64\nx = base64.b64decode('{B64}')\n",
    "open('/etc/pa' + 'sswd').read()\n",
    "a = 'o'\nb = 's'\neval(a + b)\n",
])
@pytest.mark.parametrize("order", ["bomb first", "sink first"])
def test_after_the_budget_is_spent_sinks_are_still_judged(sink: str, order: str) -> None:
    # the pass visits the last statements first: "sink first" spends the budget before it
    # reaches the sink, which is what an attacker would write
    code = PRELUDE + sink if order == "bomb first" else sink + PRELUDE
    findings = run(code)
    assert BUDGET_RULE in rules(findings)
    assert top(findings) >= Level.HIGH


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


# -- paths found by an attack battery on the pass itself ---------------------------------------
def _doubled(seed: str, times: int) -> str:
    """Source that folds ``seed`` doubled ``times`` times into ``a{times}`` (written last line
    first, so the pass folds the chain from its first link up)."""
    links = [f"a{i + 1} = a{i} + a{i}\n" for i in range(times)]
    return "".join(reversed(links)) + f"a0 = {seed!r}\n"


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts ast.iter_child_nodes calls: every walk of the tree goes through it."""
    calls = [0]
    original = ast.iter_child_nodes

    def counted(node: ast.AST) -> Iterator[ast.AST]:
        calls[0] += 1
        return original(node)

    monkeypatch.setattr(ast, "iter_child_nodes", counted)
    yield calls


@pytest.mark.parametrize("code", [
    # each nested loop walked its whole subtree again (179 visits per node before)
    "".join("    " * i + "while 1:\n" for i in range(60)) + "    " * 60 + ";".join(["x"] * 2000),
    # each use of os.environ walked the whole tree to find its consumer (1001 per node before)
    "import os\n" + "os.environ\n" * 1000,
], ids=["nested endless loops", "many environ uses"])
def test_the_tree_is_walked_a_bounded_number_of_times(walks: list[int], code: str) -> None:
    nodes = sum(1 for _ in ast.walk(ast.parse(code)))
    walks[0] = 0
    run(code)
    assert walks[0] < 10 * nodes


def test_eval_sites_are_not_checked_against_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    from cellblock.assess._ast_pass._provenance import ProvenanceTracer

    checked = [0]
    rebinds = ProvenanceTracer._rebinds

    def counted(self: ProvenanceTracer, call: ast.Call) -> bool:
        checked[0] += 1
        return rebinds(self, call)

    monkeypatch.setattr(ProvenanceTracer, "_rebinds", counted)
    findings = run("s = '1'\n" + "eval(s)\n" * 500)
    assert checked[0] <= 500  # once per eval, not once per pair
    assert rules(findings) == {"cb.dynamic-code.constant"}


@pytest.mark.parametrize(("code", "rule"), [
    # a payload folded past what the pass reads is still judged when it runs
    (_doubled("x.y()\n" * 512, 8) + "exec(a8)\n", "cb.dynamic-code.unread-payload"),
    # and so is a literal one, spelled out in the source
    ("exec('''" + "import os\nos.system('id')\n" * 3000 + "''')\n",
     "cb.dynamic-code.unread-payload"),
    # nesting too deep to follow is judged, not a crash
    ("eval(a" + "[0]" * 900 + ")\n", "cb.obfuscation.analysis-depth"),
    ("import yaml\nyaml.load(s, a" + "[0]" * 900 + ")\n", "cb.obfuscation.analysis-depth"),
], ids=["folded payload", "literal payload", "deep subscripts", "deep yaml loader"])
def test_code_the_pass_cannot_read_is_not_trusted(code: str, rule: str) -> None:
    findings = run(code)
    assert rule in rules(findings)
    assert top(findings) >= Level.HIGH


@pytest.mark.parametrize("code", [
    "x = 0x" + "f" * 4000 + "\ny = f'{x}'\nprint(y.upper())\n",
    "x = 'a' * 0x" + "f" * 4000 + "\n",
    "x = bytes(0x" + "f" * 4000 + ")\n",
], ids=["f-string", "repetition", "bytes"])
def test_integers_python_cannot_print_do_not_crash_the_pass(code: str) -> None:
    run(code)  # raised ValueError (Python's 4,300-digit limit): the pass failed closed


@pytest.mark.parametrize("code", [
    "a = '{0.__class__.__dict__}' * 170\nprint(a.format(1).upper())\n",
    "a = '{0!r}' * 800\nprint(a.format('\\x00' * 1000).upper())\n",
    "x = '" + "".join(chr(0x4E00 + i) for i in range(3000)) + "'.encode('punycode')\n"
    "print(x.upper())\n",
], ids=["attribute fields", "repr fields", "punycode"])
def test_unbounded_formats_and_codecs_are_not_folded(meter: Meter, code: str) -> None:
    run(code)
    assert meter.longest <= 4096  # what the literals fold to; the formatted text would be MBs


def test_the_time_limit_is_a_backstop_that_fails_closed() -> None:
    code = "import os\nos.system('id')\n" + "x = 1\n" * 400
    source = Source(code, "t.py", tuple(code.splitlines()))
    findings = list(AstAnalyzer(timeout_s=1e-9).analyze(source).findings)
    assert "cb.obfuscation.analysis-timeout" in rules(findings)
    assert top(findings) == Level.CRITICAL  # the walk stopped: the rest could be anything


def test_the_walk_goes_on_past_a_node_too_deep_to_follow() -> None:
    code = "import os\nos.system('id')\n" + "eval(a" + "[0]" * 900 + ")\n"
    found = rules(run(code))
    assert {"cb.obfuscation.analysis-depth", "cb.process.spawn"} <= found


def test_a_long_decoded_payload_that_is_not_run_here_is_not_trusted() -> None:
    import base64
    payload = "import os\nos.system('id')\n" + "x = 1\n" * 12000
    blob = base64.b64encode(payload.encode()).decode()
    code = (f"import base64\nc = base64.b64decode('{blob}')\n"
            "open('m.py', 'wb').write(c)\nimport m\n")
    findings = run(code)
    assert "cb.obfuscation.unread-payload" in rules(findings)
    assert top(findings) >= Level.HIGH
    data = base64.b64encode(bytes(range(256)) * 400).decode()  # data, not code: no finding
    assert "cb.obfuscation.unread-payload" not in rules(
        run(f"import base64\nc = base64.b64decode('{data}')\n"))


@pytest.mark.parametrize("code", [
    "m = __import__('%c%c' % tuple(range(111, 116, 4)))\nm.system('id')\n",
    "import os\nk = [115, 121, 115, 116, 101, 109]\nif input():\n"
    "    k = [115, 121, 115, 116, 101, 109]\n"
    "getattr(os, ''.join(chr(c) for c in k))('id')\n",
    "import os\nk = [" + ", ".join(["115, 121, 115, 116, 101, 109"] * 4) + "]\nif input():\n"
    "    k = [" + ", ".join(["115, 121, 115, 116, 101, 109"] * 4) + "]\n"
    "getattr(os, ''.join(chr(c) for c in k)[:6])('id')\n",
], ids=["tuple of a range", "repeated binding", "equal long bindings"])
def test_lazy_ranges_and_equal_bindings_still_fold(code: str) -> None:
    assert top(run(code)) == Level.CRITICAL


def test_a_nested_width_is_not_formatted(meter: Meter) -> None:
    run("b = '{:{}}'.format('x', 400000000)\nc = '{0:{1}}'.format('x', 400000000)\n"
        "print(b.upper(), c.upper())\n")
    assert meter.longest < 100


def test_a_character_out_of_range_does_not_crash_the_pass() -> None:
    run("x = '%c' % -1\ny = '%c' % 0x110000\nprint(x.upper(), y.upper())\n")
