"""Every file in broken/ is rejected with exactly the messages in its ``# expect:`` lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellblock.policy import PolicyValidationError, load_policy

BROKEN = Path(__file__).parent / "broken"
FILES = sorted(BROKEN.glob("*.yaml"))


def expected(path: Path) -> list[str]:
    prefix = "# expect: "
    return [
        line[len(prefix) :]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]


def test_enough_broken_files() -> None:
    assert len(FILES) >= 12
    assert all(expected(f) for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_broken_file_message(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    with pytest.raises(PolicyValidationError) as info:
        load_policy(path.name)
    exc = info.value
    assert [str(issue) for issue in exc.issues] == expected(path)
    assert str(exc) == "\n".join(expected(path))
    assert exc.exit_code == 64
    assert all(issue.file == path.name for issue in exc.issues)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_validate_cli_prints_each_issue(
    path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.chdir(BROKEN)
    result = run_cli(["policy", "validate", path.name])
    assert result.code == 1
    assert result.out.splitlines() == expected(path)


def test_issue_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    with pytest.raises(PolicyValidationError) as info:
        load_policy("bad-size.yaml")
    (issue,) = info.value.issues
    assert issue.file == "bad-size.yaml"
    assert (issue.line, issue.column) == (13, 13)
    assert issue.path == "profiles.open.memory"
    assert issue.expected == "a size such as 256m"
    assert issue.found == '"lots"'


def test_file_named_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN.parent)
    with pytest.raises(PolicyValidationError) as info:
        load_policy("broken/bad-size.yaml")
    assert str(info.value).startswith("broken/bad-size.yaml:13:13: profiles.open.memory: ")
