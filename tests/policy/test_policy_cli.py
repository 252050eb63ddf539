"""``cellblock policy list | show | validate | diff`` through an argparse harness."""

from __future__ import annotations

import json
from pathlib import Path

from cellblock.policy import load_preset, parse_policy, preset_text


def test_list(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["policy", "list"])
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("strict (default)  The default for code you did not write.")
    assert lines[1].startswith("standard ")
    assert lines[2].startswith("trusted-dev ")
    assert lines[-1] == 'in force here: preset "strict" (default)'


def test_list_with_broken_local_policy(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    (isolated / "cellblock.yaml").write_text("version: 2\n")
    result = run_cli(["policy", "list"])
    assert result.code == 0
    assert "cellblock.yaml:1:10: version: expected 1, got 2" in result.err


def test_show_preset(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["policy", "show", "standard"])
    assert result.code == 0
    policy = load_preset("standard")
    assert result.out.splitlines()[:3] == [
        "# policy 'standard' from preset \"standard\" (given)",
        f"# digest {policy.digest()}",
        "# loosenings: none",
    ]
    assert parse_policy(result.out) == policy


def test_show_default_raw_and_json(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli(["policy", "show", "--raw"]).out == preset_text("strict")
    data = json.loads(run_cli(["policy", "show", "trusted-dev", "--json"]).out)
    assert data["policy"] == load_preset("trusted-dev").to_dict()
    assert data["source"]["loosenings"] == ["assessment.allow_skip"]


def test_show_file_raw(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    (isolated / "mine.yaml").write_text(preset_text("standard"))
    assert run_cli(["policy", "show", "mine.yaml", "--raw"]).out == preset_text("standard")


def test_show_unknown(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["policy", "show", "nope"])
    assert result.code == 64
    assert result.err.startswith("cellblock: error: no policy preset named 'nope'")


def test_validate(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    (isolated / "ok.yaml").write_text(preset_text("trusted-dev"))
    (isolated / "bad.yaml").write_text(preset_text("strict").replace("pids: 64", "pids: -1"))
    ok = run_cli(["policy", "validate", "ok.yaml"])
    assert ok.code == 0
    assert ok.out == "ok.yaml: valid (policy 'trusted-dev'; loosens assessment.allow_skip)\n"
    both = run_cli(["policy", "validate", "ok.yaml", "bad.yaml", "missing.yaml"])
    assert both.code == 1
    assert both.out.splitlines() == [
        "ok.yaml: valid (policy 'trusted-dev'; loosens assessment.allow_skip)",
        "bad.yaml:39:11: profiles.open.pids: expected an integer between 8 and 1000000, got -1",
        "missing.yaml: policy file missing.yaml does not exist",
    ]


def test_diff_same(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    (isolated / "copy.yaml").write_text(preset_text("strict"))
    result = run_cli(["policy", "diff", "strict", "copy.yaml"])
    assert result.code == 0
    assert result.out.splitlines()[-1] == "no differences"


def test_diff_fields(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    text = (
        preset_text("strict")
        .replace("memory: 256m", "memory: 512m")
        .replace("seccomp: cellblock ", "seccomp: docker-default ")
        .replace("  high: block", "  high: review")
    )
    (isolated / "mine.yaml").write_text(text)
    result = run_cli(["policy", "diff", "strict", "mine.yaml"])
    assert result.code == 1
    assert result.out.splitlines() == [
        '--- preset "strict" (given)',
        f"+++ {isolated / 'mine.yaml'} (given)",
        "~ decisions.high: block -> review",
        "~ profiles.open.memory: 256m -> 512m",
        "~ hardening.seccomp: cellblock -> docker-default",
    ]


def test_diff_added_and_removed_profiles(isolated: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["policy", "diff", "strict", "trusted-dev"])
    assert result.code == 1
    assert "- profiles.open.memory: 256m" in result.out.splitlines()
    assert "+ profiles.dev.memory: 1g" in result.out.splitlines()
    assert "~ decisions.critical: block -> review" in result.out.splitlines()
