"""Suppression comments inside untrusted code are ignored by every analyzer."""

from __future__ import annotations

from cellblock.assess import Level, assess

CODE = (
    "import subprocess  # nosec\n"
    "subprocess.Popen('id', shell=True)  # nosec B602 nosemgrep\n"
    "import pickle  # nosec\n"
    "pickle.loads(b'')  # nosemgrep: sg-deserialization-unsafe\n"
)


def test_nosec_and_nosemgrep_are_ignored() -> None:
    a = assess(CODE, deep=True)
    tools = {(f.tool, f.line) for f in a.findings if f.severity >= Level.HIGH}
    assert ("bandit", 2) in tools, "Bandit must ignore # nosec"
    assert ("semgrep", 2) in tools, "Semgrep must ignore # nosemgrep"
    assert ("semgrep", 4) in tools
    assert ("bandit", 4) in tools
    assert a.level >= Level.HIGH
