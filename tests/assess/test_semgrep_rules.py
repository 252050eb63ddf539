"""The shipped Semgrep rules, run for real on small snippets (one Semgrep call per test)."""

from __future__ import annotations

from cellblock.assess import assess_many

REFERENCES = {
    "map": "import os\nlist(map(os.system, ['id']))\n",
    "staticmethod": "import os\nclass A:\n    __call__ = staticmethod(os.system)\nA()('id')\n",
    "partial": "import functools, subprocess\nfunctools.partial(subprocess.run, ['id'])()\n",
    "keyword": "import os, threading\nthreading.Thread(target=os.system, args=('id',))\n",
    "alias": "from os import popen\nf = popen\n",
    "container": "import os\nd = {'k': os.popen}\n",
    "return": "import subprocess\ndef pick():\n    return subprocess.getoutput\n",
    "decorator": "import os\n@os.system\ndef cmd():\n    pass\n",
}
NOT_REFERENCES = {
    "direct": "import os\nos.system('id')\n",
    "result": "import subprocess\nx = subprocess.run(['id'], stdout=subprocess.PIPE)\n",
    "in-list": "import os\ny = [os.popen('id')]\n",
    "benign": "import os\nprint(list(map(os.path.join, ['a'], ['b'])))\n",
}
RULE = "sg-process-exec-reference"


def _semgrep_rules(snippets: dict[str, str]) -> dict[str, set[str]]:
    out = assess_many({k: v.encode() for k, v in snippets.items()}, deep=True)
    assert all(a.deep_ran and not a.errors for a in out.values())
    return {k: {f.rule_id for f in a.findings if f.tool == "semgrep"} for k, a in out.items()}


def test_process_reference_rule() -> None:
    found = _semgrep_rules({**REFERENCES, **NOT_REFERENCES})
    assert {k for k in REFERENCES if RULE not in found[k]} == set()
    assert {k for k in NOT_REFERENCES if RULE in found[k]} == set()
