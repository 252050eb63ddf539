"""The shipped presets: valid, round-trip, decide as documented, limits shrink with trust."""

from __future__ import annotations

import itertools
from enum import Enum

import pytest

from cellblock.policy import (
    LEVELS,
    Policy,
    UnknownLevelError,
    load_preset,
    parse_policy,
    preset_names,
    preset_text,
)
from cellblock.sandbox.interface import MIB, Limits

PRESETS = ["strict", "standard", "trusted-dev"]

DOCUMENTED = {
    "strict": {
        "none": ("allow", "open"),
        "low": ("restrict", "restricted"),
        "medium": ("review", "reviewed"),
        "high": ("block", None),
        "critical": ("block", None),
    },
    "standard": {
        "none": ("allow", "open"),
        "low": ("allow", "open"),
        "medium": ("restrict", "restricted"),
        "high": ("review", "reviewed"),
        "critical": ("block", None),
    },
    "trusted-dev": {
        "none": ("allow", "dev"),
        "low": ("allow", "dev"),
        "medium": ("restrict", "restricted"),
        "high": ("restrict", "restricted"),
        "critical": ("review", "reviewed"),
    },
}


def test_preset_names() -> None:
    assert preset_names() == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_validates_and_is_commented(name: str) -> None:
    policy = load_preset(name)
    assert policy.name == name
    assert policy.description
    assert preset_text(name).startswith(f'# cellblock policy preset "{name}"')


@pytest.mark.parametrize("name", PRESETS)
def test_round_trip(name: str) -> None:
    policy = load_preset(name)
    again = Policy.from_dict(policy.to_dict())
    assert again == policy
    assert again.digest() == policy.digest()
    from_yaml = parse_policy(policy.to_yaml(), source="again.yaml")
    assert from_yaml == policy
    assert from_yaml.to_yaml() == policy.to_yaml()


@pytest.mark.parametrize("name", PRESETS)
def test_decide_as_documented(name: str) -> None:
    policy = load_preset(name)
    for level, (action, profile) in DOCUMENTED[name].items():
        decision = policy.decide(level, runtimes=frozenset({"runc"}))
        assert (decision.action, decision.profile) == (action, profile), level
        assert decision.level == level
        assert f"assessed {level}" in decision.reason
        if profile is None:
            assert decision.limits is None
            assert policy.profile_for(action) is None
        else:
            assert decision.limits == policy.profiles[profile].to_limits(frozenset({"runc"}))
            assert policy.profile_for(action) == policy.profiles[profile]


def test_strict_defaults() -> None:
    policy = load_preset("strict")
    assert policy.assessment.allow_skip is False
    assert policy.audit.required is True
    assert all(p.runtime == "auto" for p in policy.profiles.values())
    assert policy.decide("none", runtimes=frozenset({"runc", "runsc"})).limits is not None
    limits = policy.decide("none", runtimes=frozenset({"runc", "runsc"})).limits
    assert limits is not None and limits.runtime == "runsc"
    limits = policy.decide("none", runtimes=frozenset({"runc"})).limits
    assert limits is not None and limits.runtime == "runc"
    assert load_preset("trusted-dev").assessment.deep == "never"


def _le(a: Limits, b: Limits) -> bool:
    fields = ("cpus", "memory_bytes", "pids", "nofile", "timeout_s", "stdout_bytes")
    return all(getattr(a, f) <= getattr(b, f) for f in fields)


@pytest.mark.parametrize("name", PRESETS)
def test_less_trust_fewer_resources(name: str) -> None:
    policy = load_preset(name)
    running = [policy.decide(level).limits for level in LEVELS]
    limits = [lim for lim in running if lim is not None]
    for looser, tighter in itertools.pairwise(limits):
        assert _le(tighter, looser)
    none, medium = policy.decide("none").limits, policy.decide("medium").limits
    assert none is not None and medium is not None
    for f in ("cpus", "memory_bytes", "pids", "timeout_s", "stdout_bytes"):
        assert getattr(medium, f) < getattr(none, f), f


def test_loosenings_of_presets() -> None:
    assert load_preset("strict").loosenings() == []
    assert load_preset("standard").loosenings() == []
    assert load_preset("trusted-dev").loosenings() == ["assessment.allow_skip"]


def test_loosenings_reported() -> None:
    data = load_preset("strict").to_dict()
    data["hardening"].update(read_only_root=False, seccomp="docker-default")
    data["audit"]["required"] = False
    policy = Policy.from_dict(data)
    assert policy.loosenings() == [
        "hardening.read_only_root",
        "hardening.seccomp",
        "audit.required",
    ]


def test_decide_accepts_str_enum_and_cause() -> None:
    class Level(str, Enum):  # noqa: UP042 - mirrors cellblock.assess.Level
        MEDIUM = "medium"

    decision = load_preset("strict").decide(Level.MEDIUM, cause="rule B602")
    assert decision.action == "review"
    assert decision.reason == (
        'assessed medium (rule B602); policy "strict" requires review for level medium; '
        'runs under profile "reviewed" once approved'
    )
    assert decision.to_dict()["profile"] == "reviewed"


def test_decide_block_reason() -> None:
    decision = load_preset("strict").decide("critical")
    assert decision.reason == 'assessed critical; policy "strict" blocks level critical'


def test_decide_unknown_level() -> None:
    with pytest.raises(UnknownLevelError, match="'severe'"):
        load_preset("strict").decide("severe")


def test_auto_runtime_fails_closed_without_runtimes() -> None:
    profile = load_preset("strict").profiles["open"]
    assert profile.resolve_runtime(frozenset()) == "runc"
    assert profile.resolve_runtime(frozenset({"runc", "runsc"})) == "runsc"
    assert profile.to_limits().runtime == "runsc"


def test_profile_to_limits() -> None:
    profile = load_preset("strict").profiles["restricted"]
    limits = profile.to_limits(frozenset({"runc"}))
    assert limits == Limits(
        timeout_s=5.0,
        cpus=0.5,
        memory_bytes=128 * MIB,
        swap_bytes=0,
        pids=32,
        nofile=128,
        tmpfs_bytes=32 * MIB,
        tmp_bytes=8 * MIB,
        stdout_bytes=256 * 1024,
        stderr_bytes=256 * 1024,
        max_code_bytes=4 * MIB,
        runtime="runc",
        network="none",
    )


def test_digest_ignores_spelling() -> None:
    a = load_preset("strict").to_dict()
    b = load_preset("strict").to_dict()
    b["profiles"]["open"]["memory"] = "256m"
    b["profiles"]["open"]["timeout"] = "10s"
    assert Policy.from_dict(a).digest() == Policy.from_dict(b).digest()
    assert Policy.from_dict(a).digest().startswith("sha256:")
