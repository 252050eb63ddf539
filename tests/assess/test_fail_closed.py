"""Fail-closed behaviour with real analyzers: bad input and broken analyzers never give 'none'."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from cellblock.assess import AssessConfig, Level, assess

BENIGN = "import json\nprint(json.dumps({'a': 1}))\n"


def _script(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fake-semgrep"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


def test_syntax_error_fails_closed() -> None:
    a = assess("def f(:\n    pass\n")
    assert a.level >= Level.HIGH
    f = next(f for f in a.findings if f.category == "parse-error")
    assert f.rule_id == "cb.parse.syntax-error" and f.line == 1


def test_newer_syntax_than_sandbox_fails_closed() -> None:
    # match statements are 3.10; parenthesised context managers fine in 3.11; use 3.12 generics
    a = assess("def f[T](x: T) -> T:\n    return x\n")
    assert a.level >= Level.HIGH
    assert any(f.category == "parse-error" for f in a.findings)


def test_undecodable_bytes_fail_closed() -> None:
    a = assess(b"x = '\xff\xfe\xfd'\n")
    assert a.level >= Level.HIGH
    assert [f.rule_id for f in a.findings] == ["cb.parse.undecodable"]
    assert "utf-8" in a.findings[0].message
    assert len(a.code_sha256) == 64


def test_unknown_coding_cookie_fails_closed() -> None:
    a = assess(b"# -*- coding: no-such-codec -*-\nx = 1\n")
    assert a.level >= Level.HIGH and a.findings[0].rule_id == "cb.parse.undecodable"


def test_pep263_cookie_is_honoured() -> None:
    code = "# -*- coding: latin-1 -*-\nname = 'caf\xe9'\nimport os\nos.system('ls')\n"
    a = assess(code.encode("latin-1"), deep=False)
    assert not any(f.category == "parse-error" for f in a.findings)
    assert any(f.rule_id == "cb.process.spawn" for f in a.findings)


def test_null_bytes_fail_closed() -> None:
    a = assess("x = 1\x00\n")
    assert a.level >= Level.HIGH and a.findings[0].category == "parse-error"


def test_lone_surrogates_fail_closed() -> None:
    a = assess("x = '\ud800'\n")
    assert a.level >= Level.HIGH and a.findings[0].rule_id == "cb.parse.undecodable"


def test_oversized_code_fails_closed() -> None:
    a = assess("x = 1\n" * 100, config=AssessConfig(max_code_bytes=100))
    assert a.level >= Level.HIGH and "limit" in a.findings[0].message


def test_missing_semgrep_fails_closed(tmp_path: Path) -> None:
    cfg = AssessConfig(semgrep_binary=str(tmp_path / "no-such-semgrep"))
    a = assess(BENIGN, config=cfg, deep=True)
    assert a.deep_ran and "semgrep" in a.errors
    assert a.level == cfg.analyzer_error_level != Level.NONE
    assert any(f.rule_id == "cb.analyzer.semgrep" for f in a.findings)


def test_crashing_semgrep_fails_closed(tmp_path: Path) -> None:
    cfg = AssessConfig(semgrep_binary=_script(tmp_path, "echo boom >&2; exit 7"))
    a = assess(BENIGN, config=cfg, deep=True)
    assert "status 7" in a.errors["semgrep"] and a.level >= Level.MEDIUM


def test_semgrep_garbage_output_fails_closed(tmp_path: Path) -> None:
    cfg = AssessConfig(semgrep_binary=_script(tmp_path, "echo not-json; exit 0"))
    a = assess(BENIGN, config=cfg, deep=True)
    assert "not JSON" in a.errors["semgrep"] and a.level >= Level.MEDIUM


def test_semgrep_silent_skip_fails_closed(tmp_path: Path) -> None:
    # a clean-looking run that did not scan our file (what a non-.py name would cause)
    body = "echo '{\"results\": [], \"errors\": [], \"paths\": {\"scanned\": []}}'"
    cfg = AssessConfig(semgrep_binary=_script(tmp_path, body))
    a = assess(BENIGN, config=cfg, deep=True)
    assert "did not scan" in a.errors["semgrep"] and a.level >= Level.MEDIUM


def test_semgrep_timeout_fails_closed(tmp_path: Path) -> None:
    cfg = AssessConfig(semgrep_binary=_script(tmp_path, "sleep 5"), semgrep_timeout_s=0.5)
    t0 = time.perf_counter()
    a = assess(BENIGN, config=cfg, deep=True)
    assert time.perf_counter() - t0 < 4
    assert "did not finish" in a.errors["semgrep"] and a.level >= Level.MEDIUM


def test_bandit_timeout_fails_closed() -> None:
    # a program big enough that Bandit really needs far longer than the limit (a 1e-9 s limit on a
    # small program was flaky: the thread sometimes finished before the join)
    big = BENIGN + "".join(f"value_{i} = [{i}, {i} + 1]\n" for i in range(30000))
    a = assess(big, config=AssessConfig(bandit_timeout_s=0.005), deep=False)
    assert "bandit" in a.errors and a.level >= Level.MEDIUM


def test_semgrep_is_found_beside_the_interpreter() -> None:
    from cellblock.assess._semgrep import find_semgrep

    found = find_semgrep()
    assert found is not None and os.access(found, os.X_OK)


@pytest.mark.parametrize("mode,expect", [("never", False), ("always", True)])
def test_deep_mode_follows_config(mode: str, expect: bool) -> None:
    a = assess(BENIGN, config=AssessConfig(deep=mode))  # type: ignore[arg-type]
    assert a.deep_ran is expect


def test_auto_mode_runs_deep_only_when_risky() -> None:
    assert not assess(BENIGN).deep_ran
    risky = assess("import os\nos.system('id')\n")
    assert risky.deep_ran and "semgrep" in risky.analyzers_run
    assert risky.tool_versions["semgrep"][0].isdigit()
