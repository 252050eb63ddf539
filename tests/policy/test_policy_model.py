"""Units, cross-field checks, audit settings and errors outside files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellblock.policy import AuditSettings, Policy, PolicyValidationError, Profile, load_preset
from cellblock.sandbox.interface import MIB


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(10, 10.0), ("10", 10.0), ("10s", 10.0), ("1.5s", 1.5), ("2m", 120.0), ("500ms", 0.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert Profile.model_validate({"timeout": text}).timeout == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("256m", 256 * MIB), ("1g", 1024 * MIB), ("1GiB", 1024 * MIB), (33554432, 32 * MIB)],
)
def test_sizes(text: object, size: int) -> None:
    assert Profile.model_validate({"memory": text}).memory == size


def test_from_dict_issues_have_no_lines() -> None:
    data = load_preset("strict").to_dict()
    data["profiles"]["open"]["memory"] = "lots"
    with pytest.raises(PolicyValidationError) as info:
        Policy.from_dict(data, source="inline")
    assert str(info.value) == (
        'inline: profiles.open.memory: expected a size such as 256m, got "lots"'
    )


def test_missing_profile_lists_none_defined() -> None:
    data = load_preset("strict").to_dict()
    data["profiles"] = {}
    with pytest.raises(PolicyValidationError) as info:
        Policy.from_dict(data, source="inline")
    assert str(info.value) == (
        'inline: decision_profiles.allow: expected the name of a profile (none defined), got "open"'
    )


def test_policy_is_immutable() -> None:
    policy = load_preset("strict")
    with pytest.raises(Exception, match="frozen"):
        policy.name = "other"  # type: ignore[misc]


def test_audit_open_kwargs_and_directory(tmp_path: Path) -> None:
    audit = AuditSettings.model_validate(
        {"checkpoint_interval": "2m", "rotate_size": "64m", "rotate_age": "1d"}
    )
    assert audit.open_kwargs() == {
        "durable": True,
        "checkpoint_every": 1000,
        "checkpoint_interval_s": 120.0,
        "retention_days": 30,
        "rotate_bytes": 64 * MIB,
        "rotate_age_s": 86400.0,
    }
    assert AuditSettings().open_kwargs().keys() == {
        "durable",
        "checkpoint_every",
        "checkpoint_interval_s",
        "retention_days",
    }
    assert audit.resolve_directory({"CELLBLOCK_AUDIT_DIR": str(tmp_path)}) == tmp_path
    explicit = AuditSettings.model_validate({"directory": str(tmp_path / "x")})
    assert explicit.resolve_directory({"CELLBLOCK_AUDIT_DIR": "/elsewhere"}) == tmp_path / "x"
    assert AuditSettings().resolve_directory({}).name == "audit"


def test_merge_keys_and_anchors() -> None:
    text = """
version: 1
name: anchors
decisions: {none: allow, low: allow, medium: restrict, high: review, critical: block}
profiles:
  open: &open
    memory: 256m
    pids: 64
  tight:
    <<: *open
    memory: 64m
decision_profiles: {allow: open, restrict: tight, review: tight}
"""
    from cellblock.policy import parse_policy

    policy = parse_policy(text)
    assert policy.profiles["tight"].memory == 64 * MIB
    assert policy.profiles["tight"].pids == 64


def test_rule_levels_accept_semgrep_ids_and_reject_odd_keys() -> None:
    from cellblock.policy import parse_policy, preset_text

    text = preset_text("strict").replace(
        "rule_levels: {}",
        "rule_levels: {B602: high, python.lang.security.audit.dangerous-subprocess-use: critical}",
    )
    policy = parse_policy(text)
    assert policy.assessment.rule_levels["B602"] == "high"
    bad = preset_text("strict").replace("rule_levels: {}", "rule_levels: {yes: low}")
    with pytest.raises(PolicyValidationError) as info:
        parse_policy(bad, source="p.yaml")
    assert str(info.value) == (
        "p.yaml:20:17: assessment.rule_levels.true: expected a rule id or category name "
        "(no spaces, at most 200), got true"
    )
    with pytest.raises(PolicyValidationError) as info:
        parse_policy("~: 1\n" + preset_text("strict"), source="p.yaml")
    assert str(info.value) == "p.yaml:1:1: expected text keys, got null"
